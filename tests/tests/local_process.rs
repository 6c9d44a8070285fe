//! The local place on the `process` backend, end to end: the built kit drives the real
//! reference engine (`WB_ENGINE_BIN`) as a detached process; the test talks HTTP to it.

mod local_support;

use std::time::{Duration, Instant};

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
fn full_arc_apply_verify_write_down_apply_read_down() {
    let sb = sandbox();
    let file = write_deployment(&sb, "arc", "", "");
    let _guard = DownOnDrop::new(&sb, &file);

    let v = apply_ok(&sb, &file);
    assert_eq!(v["backend"], "process");
    assert_eq!(v["action"], "created");
    let url = v["url"].as_str().unwrap().to_string();

    let verify = sb.deploy(&["verify", &file]);
    verify.expect_code(0);
    assert!(
        verify
            .stderr
            .contains(&format!("runtime healthy — {url}/health → 200")),
        "{}",
        verify.stderr
    );

    let ep = endpoint(&sb, &file);
    assert!(url.ends_with(&format!(":{}", ep.port)));
    let book = workbook_bytes();
    let (status, _) = http("PUT", ep.port, "/workbooks/book.wb", &ep.token, &book);
    assert_eq!(status, 201);

    let down = sb.deploy(&["down", &file]);
    down.expect_code(0);
    let data = data_dir(&sb, "arc");
    assert!(
        down.stderr.contains(&format!(
            "runtime down — data preserved at {}",
            data.display()
        )),
        "{}",
        down.stderr
    );
    assert!(
        data.join("registry.db").is_file(),
        "the registry lives in the data dir"
    );
    assert!(!ep.discovery.exists(), "a clean stop removes runtime.json");

    apply_ok(&sb, &file);
    let ep = endpoint(&sb, &file);
    let (status, body) = http("GET", ep.port, "/workbooks/book.wb", &ep.token, b"");
    assert_eq!(status, 200);
    assert_eq!(body, book, "the workbook survived down/apply byte for byte");
    let (status, body) = http("GET", ep.port, "/workbooks", &ep.token, b"");
    assert_eq!((status, body), (200, b"[\"book.wb\"]".to_vec()));

    sb.deploy(&["down", &file]).expect_code(0);
    let status = json(&sb, "status", &file).1;
    assert_eq!(status["running"], false);
    assert_eq!(status["state"], "down");
}

#[test]
fn second_apply_touches_nothing_force_and_changes_replace() {
    let sb = sandbox();
    let file = write_deployment(&sb, "idem", "", "");
    let _guard = DownOnDrop::new(&sb, &file);

    let first = apply_ok(&sb, &file);
    let pid = pid_of(&first);
    let runtime_before = std::fs::read_to_string(first["discovery"].as_str().unwrap()).unwrap();

    let second = apply_ok(&sb, &file);
    assert_eq!(second["action"], "unchanged");
    assert_eq!(pid_of(&second), pid, "the same engine process");
    assert_eq!(second["url"], first["url"]);
    let runtime_after = std::fs::read_to_string(first["discovery"].as_str().unwrap()).unwrap();
    assert_eq!(
        runtime_before, runtime_after,
        "the discovery file is untouched"
    );
    assert!(alive(pid));

    let forced = sb.deploy(&["apply", &file, "--force", "--json"]);
    forced.expect_code(0);
    let forced = forced.json();
    assert_eq!(forced["action"], "replaced");
    assert_ne!(pid_of(&forced), pid);
    assert!(!alive(pid), "the replaced engine is stopped");
    assert_eq!(
        forced["url"], first["url"],
        "the port is kept across a replacement"
    );

    // A changed deployment (a new property in the engine env) is replaced.
    write_deployment(&sb, "idem", ":PROFILE: /profiles/a\n", "");
    let changed = sb.deploy(&["apply", &file, "--json"]);
    changed.expect_code(0);
    assert!(
        changed.stderr.contains("env:WB_PROFILE_DIR added"),
        "{}",
        changed.stderr
    );
    let changed = changed.json();
    assert_eq!(changed["action"], "replaced");
    assert_ne!(pid_of(&changed), pid_of(&forced));
    let environ = std::fs::read(format!("/proc/{}/environ", pid_of(&changed))).unwrap();
    assert!(contains(&environ, "WB_PROFILE_DIR=/profiles/a"));
}

#[test]
fn a_taken_port_moves_to_another_free_one() {
    let sb = sandbox();
    let file = write_deployment(&sb, "ports", "", "");
    let _guard = DownOnDrop::new(&sb, &file);

    let first = apply_ok(&sb, &file);
    let url = first["url"].as_str().unwrap().to_string();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    sb.deploy(&["down", &file]).expect_code(0);

    // Someone else takes the port the kit used last time.
    let squatter =
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free after down");
    let second = sb.deploy(&["apply", &file, "--json"]);
    second.expect_code(0);
    assert!(
        second
            .stderr
            .contains(&format!("port {port} (used last time) is taken")),
        "{}",
        second.stderr
    );
    let second = second.json();
    assert_ne!(second["url"].as_str().unwrap(), url);
    sb.deploy(&["verify", &file]).expect_code(0);
    drop(squatter);
}

#[test]
fn an_engine_that_crashes_at_boot_fails_apply_with_its_log_not_a_hang() {
    let mut sb = sandbox();
    // Broken until `fixed` exists; then it is the real engine (exec keeps the pid).
    let fixed = sb.path().join("fixed");
    let script = sb.write(
        "bin/broken-engine",
        &format!(
            "#!/bin/sh\n[ -e '{}' ] && exec '{}'\necho 'broken-engine: cannot open the frobnicator (exit 1)' >&2\nexit 1\n",
            fixed.display(),
            wb_tests::engine_bin().display()
        ),
    );
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    sb.set("WB_ENGINE_BIN", script.display().to_string());
    let file = write_deployment(&sb, "crash", "", "");
    let _guard = DownOnDrop::new(&sb, &file);

    let started = Instant::now();
    let (run, v) = json(&sb, "apply", &file);
    run.expect_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "failed fast, took {:?}",
        started.elapsed()
    );
    assert!(
        run.stderr.contains("the engine exited with code 1"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("broken-engine: cannot open the frobnicator"),
        "{}",
        run.stderr
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot open the frobnicator")
    );
    assert!(!run.stderr.contains("runtime up"));

    let status = json(&sb, "status", &file).1;
    assert_eq!(status["running"], false);
    assert_eq!(status["state"], "stopped");
    let logs = sb.deploy(&["logs", &file]);
    logs.expect_code(0);
    assert!(logs.stdout.contains("cannot open the frobnicator"));

    // The real engine again: apply recovers.
    std::fs::write(&fixed, "").unwrap();
    apply_ok(&sb, &file);
    sb.deploy(&["verify", &file]).expect_code(0);
}

#[test]
fn a_killed_engine_is_detected_cleaned_and_recovered() {
    let sb = sandbox();
    let file = write_deployment(&sb, "stale", "", "");
    let _guard = DownOnDrop::new(&sb, &file);

    let first = apply_ok(&sb, &file);
    let pid = pid_of(&first);
    let ep = endpoint(&sb, &file);
    let (status, _) = http("PUT", ep.port, "/workbooks/keep.wb", &ep.token, b"kept");
    assert_eq!(status, 201);

    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ep.discovery.exists(), "kill -9 leaves a stale runtime.json");
    assert!(
        sb.wb_home().join("stale/engine.pid").exists(),
        "and a stale pid file"
    );

    let verify = sb.deploy(&["verify", &file, "--json"]);
    verify.expect_code(1);
    assert!(
        verify.stderr.contains("nothing listening on 127.0.0.1"),
        "{}",
        verify.stderr
    );
    assert!(
        verify.stderr.contains("last lines of the engine log"),
        "{}",
        verify.stderr
    );
    assert_eq!(verify.json()["healthy"], false);

    let status = json(&sb, "status", &file).1;
    assert_eq!(status["state"], "stopped");

    let again = sb.deploy(&["apply", &file, "--json"]);
    again.expect_code(0);
    assert!(
        again.stderr.contains("cleaning up after a run that died"),
        "{}",
        again.stderr
    );
    let again = again.json();
    assert_ne!(pid_of(&again), pid);
    let ep = endpoint(&sb, &file);
    let (status, body) = http("GET", ep.port, "/workbooks/keep.wb", &ep.token, b"");
    assert_eq!((status, body), (200, b"kept".to_vec()));
}

#[test]
fn down_twice_is_fine_and_verify_on_a_stopped_engine_says_why() {
    let sb = sandbox();
    let file = write_deployment(&sb, "twice", "", "");
    let _guard = DownOnDrop::new(&sb, &file);

    // Before anything ran.
    sb.deploy(&["down", &file]).expect_code(0);
    let verify = sb.deploy(&["verify", &file]);
    verify.expect_code(1);
    assert!(
        verify.stderr.contains("nothing is running for `twice`"),
        "{}",
        verify.stderr
    );

    apply_ok(&sb, &file);
    let first = sb.deploy(&["down", &file]);
    first.expect_code(0);
    let second = json(&sb, "down", &file);
    second.0.expect_code(0);
    assert!(second.0.stderr.contains("runtime down — data preserved at"));
    assert_eq!(second.1["was_running"], false);

    let verify = sb.deploy(&["verify", &file]);
    verify.expect_code(1);
    assert!(
        verify.stderr.contains("nothing is running"),
        "{}",
        verify.stderr
    );
    let url = sb.deploy(&["url", &file]);
    url.expect_code(1);
}

#[test]
fn a_canary_secret_reaches_the_engine_env_and_nothing_else() {
    let mut sb = sandbox();
    let canary = format!("canary-{}-{}", std::process::id(), "d41d8cd98f00b204");
    sb.set("CANARY_SECRET", canary.clone());
    let file = write_deployment(&sb, "canary", "", "#+DEPLOY_SECRETS: CANARY_SECRET\n");
    let _guard = DownOnDrop::new(&sb, &file);

    let (run, v) = json(&sb, "apply", &file);
    run.expect_code(0);
    run.assert_no_canary(&[&canary]);
    let pid = pid_of(&v);

    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        !contains(&cmdline, &canary),
        "the value is not in the engine's argv"
    );
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        contains(&environ, &format!("CANARY_SECRET={canary}")),
        "the engine got the value in its env"
    );
    assert!(
        !contains(&environ, "HOME="),
        "nothing but the engine env (and PATH) leaks in"
    );

    for verb in ["plan", "status", "verify", "logs", "url"] {
        let run = sb.deploy(&[verb, &file, "--json"]);
        run.expect_code(0);
        run.assert_no_canary(&[&canary]);
    }
    let apply_again = sb.deploy(&["apply", &file]);
    apply_again.assert_no_canary(&[&canary]);
    let down = sb.deploy(&["down", &file, "--json"]);
    down.expect_code(0);
    down.assert_no_canary(&[&canary]);
    let log = read(&sb.wb_home().join("canary/engine.log"));
    assert!(
        !contains(&log, &canary),
        "the engine logs names, never values"
    );
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
#[test]
fn an_unusable_auto_chosen_backend_falls_back_to_process() {
    let mut sb = sandbox();
    sb.unset("WB_VMM_BACKEND");
    let bin = sb.path().join("broken-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let podman = bin.join("podman");
    std::fs::write(
        &podman,
        "#!/bin/sh\ncase \"$1\" in\n  run) echo 'Error: runc create failed: operation not permitted' >&2; exit 126 ;;\n  image) echo 'sha256:fake localhost/wb-engine:dev' ;;\n  *) exit 0 ;;\nesac\n",
    )
    .unwrap();
    std::fs::set_permissions(&podman, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    sb.set("PATH", format!("{}:/usr/bin:/bin", bin.display()));
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
