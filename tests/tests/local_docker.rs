//! What only the docker backend does: it needs a daemon, not just a client. With
//! `WB_VMM_BACKEND=docker` and a client whose daemon does not answer, apply refuses at
//! once, says so and names the way out — no container tool call beyond `docker info`.
//! (The contract on a real daemon is `backend_contract.rs`, `docker::…`.)

mod local_support;

use local_support::*;
use wb_tests::Sandbox;

#[test]
fn a_forced_docker_without_a_daemon_is_refused_naming_the_way_out() {
    let mut sb = Sandbox::new();
    let bin = sb.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = sb.path().join("docker-calls");
    let docker = bin.join("docker");
    std::fs::write(
        &docker,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?' >&2\nexit 1\n",
            calls.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&docker, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    sb.set("PATH", bin.display().to_string());
    sb.set("WB_VMM_BACKEND", "docker");
    let file = write_deployment(&sb, &unique_id("nodaemon"), "", "");

    let (run, v) = json(&sb, "apply", &file);
    run.expect_code(1);
    let error = v["error"]["message"].as_str().unwrap();
    assert!(
        error.contains("the docker daemon is not reachable (`docker info` fails)")
            && error.contains("WB_VMM_BACKEND"),
        "{error}"
    );
    assert!(!run.stderr.contains("runtime up"), "{}", run.stderr);
    let asked = std::fs::read_to_string(&calls).unwrap();
    assert!(
        asked.lines().all(|l| l.starts_with("info")),
        "only `docker info` was asked: {asked:?}"
    );
    let status = json(&sb, "status", &file).1;
    assert_eq!(status["state"], "down", "nothing was started");
}
