//! What only the `process` backend does, end to end: the zero-config `deploy local`, the
//! refusal of an unknown backend, verify's token-mismatch and timeout diagnoses (a
//! frozen process), and the fallback of an unusable auto-chosen backend to process.
//! The contract every backend meets (apply/verify/down, ports, crashes, kill -9,
//! secrets) is `backend_contract.rs`, run on process, podman and docker.

mod local_support;

use local_support::*;
use wb_tests::Sandbox;

fn sandbox() -> Sandbox {
    let mut sb = Sandbox::new();
    sb.set("WB_VMM_BACKEND", "process");
    sb.set(
        "WB_ENGINE_BIN",
        wb_tests::engine_bin().display().to_string(),
    );
    sb
}

fn pid_of(v: &serde_json::Value) -> u32 {
    v["pid"].as_u64().expect("a pid") as u32
}

#[test]
fn deploy_local_is_a_zero_config_apply() {
    let sb = sandbox();
    let run = sb.deploy(&["local", "--json"]);
    run.expect_code(0);
    assert!(
        run.stderr.contains("runtime up — http://127.0.0.1:"),
        "{}",
        run.stderr
    );
    let v = run.json();
    assert_eq!(v["verb"], "up-local", "`local` is an alias of `up-local`");
    assert_eq!(v["id"], "local");
    assert_eq!(v["backend"], "process");
    // Any file with `:ID: local` addresses the same engine.
    let file = write_deployment(&sb, "local", "", "");
    let _guard = DownOnDrop::new(&sb, &file);
    let again = sb.deploy(&["local", "--json"]);
    again.expect_code(0);
    assert_eq!(again.json()["action"], "unchanged");
    sb.deploy(&["verify", &file]).expect_code(0);
}

#[test]
fn an_unknown_backend_is_refused_naming_the_four() {
    let mut sb = sandbox();
    sb.set("WB_VMM_BACKEND", "qemu");
    let file = write_deployment(&sb, "nobackend", "", "");
    let run = sb.deploy(&["apply", &file]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("WB_VMM_BACKEND=qemu")
            && run.stderr.contains("docker, podman, krunvm, process"),
        "{}",
        run.stderr
    );
}

#[test]
fn verify_says_token_mismatch_and_timeout() {
    let sb = sandbox();
    let file = write_deployment(&sb, "why", "", "");
    let _guard = DownOnDrop::new(&sb, &file);
    let v = apply_ok(&sb, &file);
    let pid = pid_of(&v);
    let ep = endpoint(&sb, &file);

    // A discovery file whose token is not the engine's → 401, said as a mismatch.
    let original = std::fs::read_to_string(&ep.discovery).unwrap();
    std::fs::write(&ep.discovery, original.replace(&ep.token, "not-the-token")).unwrap();
    let verify = sb.deploy(&["verify", &file, "--json"]);
    verify.expect_code(1);
    assert!(
        verify.stderr.contains("401 unauthorized — token mismatch"),
        "{}",
        verify.stderr
    );
    assert!(
        verify.stderr.contains("last lines of the engine log"),
        "{}",
        verify.stderr
    );
    assert_eq!(verify.json()["healthy"], false);
    assert!(
        !verify.stdout.contains(&ep.token) && !verify.stderr.contains(&ep.token),
        "the token is never printed"
    );
    std::fs::write(&ep.discovery, original).unwrap();

    // A stopped (SIGSTOP) engine accepts nothing it answers → a timeout.
    std::process::Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .unwrap();
    let verify = sb.deploy(&["verify", &file]);
    std::process::Command::new("kill")
        .args(["-CONT", &pid.to_string()])
        .status()
        .unwrap();
    verify.expect_code(1);
    assert!(verify.stderr.contains("timeout"), "{}", verify.stderr);
    sb.deploy(&["verify", &file]).expect_code(0);
}

/// An auto-chosen backend that cannot start the engine (here a `podman` that fails every
/// `run`, as podman does on a host that forbids its rlimits) gives way to the process
/// backend with a warning — and a re-apply stays on process, touching nothing.
///
/// The host's own tools never take part: PATH holds only fakes — a `docker` client
/// whose daemon does not answer (so docker is not a candidate, whether or not this host
/// runs a real daemon), the failing `podman` — and no krunvm.
#[test]
fn an_unusable_auto_chosen_backend_falls_back_to_process() {
    let mut sb = sandbox();
    sb.unset("WB_VMM_BACKEND");
    let bin = sb.path().join("broken-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = |name: &str, script: &str| {
        let path = bin.join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    };
    fake(
        "podman",
        "#!/bin/sh\ncase \"$1\" in\n  run) echo 'Error: runc create failed: operation not permitted' >&2; exit 126 ;;\n  image) echo 'sha256:fake localhost/wb-engine:dev' ;;\n  *) exit 0 ;;\nesac\n",
    );
    let docker_calls = sb.path().join("docker-calls");
    fake(
        "docker",
        &format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?' >&2\nexit 1\n",
            docker_calls.display()
        ),
    );
    sb.set("PATH", bin.display().to_string());
    let file = write_deployment(&sb, &unique_id("fallback"), "", "");
    let _guard = DownOnDrop::new(&sb, &file);

    let run = sb.deploy(&["apply", "--json", &file]);
    run.expect_code(0);
    assert!(
        run.stderr
            .contains("warning: podman could not start the engine"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("WB_VMM_BACKEND=podman insists on it"),
        "{}",
        run.stderr
    );
    let v = run.json();
    assert_eq!(v["backend"], "process");
    let pid = pid_of(&v);
    let asked = std::fs::read_to_string(&docker_calls).unwrap_or_default();
    assert!(
        asked.starts_with("info"),
        "docker was considered (its daemon asked) and passed over: {asked:?}"
    );
    assert!(!run.stderr.contains("docker"), "{}", run.stderr);

    let again = sb.deploy(&["apply", "--json", &file]);
    again.expect_code(0);
    let v = again.json();
    assert_eq!(v["action"], "unchanged", "{}", again.stderr);
    assert_eq!(pid_of(&v), pid);
    assert!(!again.stderr.contains("podman"), "{}", again.stderr);

    let forced = wb_tests::Run::from(
        sb.kit(&["deploy", "apply", "--force", &file])
            .env("WB_VMM_BACKEND", "podman")
            .output()
            .unwrap(),
    );
    assert_eq!(
        forced.code, 1,
        "a forced backend never falls back\n{}",
        forced.stderr
    );
    assert!(
        forced.stderr.contains("runc create failed"),
        "{}",
        forced.stderr
    );
}
