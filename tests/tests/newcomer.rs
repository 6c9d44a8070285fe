//! The newcomer's path (issue #13): progress on long steps and silence about builds on
//! an unchanged apply, doctor's real probes, the messages a first user meets, the
//! zero-config `up-local` and its argument-less follow-ups, `connect`, and the README's
//! help excerpts. Messages are asserted whole.

mod local_support;

use std::os::unix::fs::PermissionsExt;

use local_support::*;
use wb_tests::Sandbox;

/// A sandbox whose `process` backend builds the workspace's engine with the real cargo
/// (no `WB_ENGINE_BIN`), with the toolchain reachable although `HOME` is the sandbox's.
fn cargo_sandbox() -> Sandbox {
    let mut sb = Sandbox::new();
    sb.set("WB_VMM_BACKEND", "process");
    for name in [
        "CARGO",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
        "CARGO_TARGET_DIR",
    ] {
        if let Ok(v) = std::env::var(name) {
            sb.set(name, v);
        }
    }
    if std::env::var("RUSTUP_HOME").is_err() {
        let home = std::env::var("HOME").unwrap_or_default();
        sb.set("RUSTUP_HOME", format!("{home}/.rustup"));
        if std::env::var("CARGO_HOME").is_err() {
            sb.set("CARGO_HOME", format!("{home}/.cargo"));
        }
    }
    sb
}

#[test]
fn an_unchanged_engine_build_prints_nothing_about_builds_even_when_progress_is_asked() {
    // The harness built target/debug/wb-engine; the kit's own `cargo build -p wb-engine`
    // is then up to date, as on any apply after the first.
    wb_tests::engine_bin();
    let mut sb = cargo_sandbox();
    sb.set("WB_PROGRESS", "1");
    let file = write_deployment(&sb, &unique_id("quiet"), "", "");
    let _guard = DownOnDrop::new(&sb, &file);
    for round in ["first", "unchanged"] {
        let run = sb.deploy(&["apply", &file]);
        run.expect_code(0);
        for word in ["building", "Compiling", "Finished", "cargo build"] {
            assert!(
                !run.stderr.contains(word),
                "{round} apply mentions `{word}`:\n{}",
                run.stderr
            );
        }
        if round == "first" {
            let port = run
                .stderr
                .lines()
                .find_map(|l| l.strip_prefix("waiting for the engine on port "))
                .expect("the health wait is said")
                .split(' ')
                .next()
                .unwrap()
                .to_string();
            assert!(
                run.stderr
                    .lines()
                    .any(|l| l
                        == format!("waiting for the engine on port {port} to answer /health …")),
                "{}",
                run.stderr
            );
        }
    }
}

/// A stand-in for cargo with work to do: it says `Compiling` (as cargo does, on stderr)
/// and names the real engine in its JSON messages. Compiling the real engine from
/// scratch would cost a minute of a shared 2-core machine per run.
fn compiling_cargo(sb: &Sandbox) -> String {
    let engine = wb_tests::engine_bin();
    let script = format!(
        "#!/bin/sh\necho '   Compiling wb-engine v0.1.0 (/repo/engine)' >&2\nsleep 0.2\necho '{{\"reason\":\"compiler-artifact\",\"target\":{{\"name\":\"wb-engine\"}},\"executable\":\"{}\",\"fresh\":false}}'\necho '    Finished `dev` profile [unoptimized + debuginfo] target(s) in 0.20s' >&2\n",
        engine.display()
    );
    let path = sb.write("bin/cargo-compiling", &script);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[test]
fn a_build_with_work_is_announced_when_asked_and_quiet_on_a_pipe() {
    for asked in [false, true] {
        let mut sb = cargo_sandbox();
        let cargo = compiling_cargo(&sb);
        sb.set("CARGO", cargo);
        if asked {
            sb.set("WB_PROGRESS", "1");
        }
        let file = write_deployment(
            &sb,
            &unique_id(if asked { "loud" } else { "quiet" }),
            "",
            "",
        );
        let _guard = DownOnDrop::new(&sb, &file);
        let run = sb.deploy(&["apply", &file, "--json"]);
        run.expect_code(0);
        run.json();
        assert!(!run.stderr.contains("Finished"), "{}", run.stderr);
        if !asked {
            // stderr is a pipe here: no progress unless asked.
            assert!(!run.stderr.contains("building"), "{}", run.stderr);
            assert!(!run.stderr.contains("waiting for"), "{}", run.stderr);
            continue;
        }
        let lines: Vec<&str> = run.stderr.lines().collect();
        let at = lines
            .iter()
            .position(|l| {
                *l == "building the reference engine (cargo build -p wb-engine --bin wb-engine) …"
            })
            .unwrap_or_else(|| panic!("no build line:\n{}", run.stderr));
        assert_eq!(lines[at + 1], "  compiling wb-engine v0.1.0 (/repo/engine)");
    }
}

// ---- doctor ----------------------------------------------------------------------

/// runc's own words when a rootless or nested host refuses RLIMIT_NOFILE (seen on this
/// project's machine with podman 4.3 and no containers.conf).
const RUNC_RLIMIT: &str = "Error: runc: runc create failed: unable to start container process: error during container init: error setting rlimits for ready process: error setting rlimit type 7: operation not permitted: OCI permission denied";

#[test]
fn the_rlimit_failure_gets_a_suggestion() {
    assert_eq!(
        xtask::local::backend::container::rlimit_hint(RUNC_RLIMIT).as_deref(),
        Some(
            "the container runtime may not raise resource limit 7 on this host (rootless or nested) — set `default_ulimits = [\"nofile=1024:1024\"]` under [containers] in ~/.config/containers/containers.conf (or the file CONTAINERS_CONF names), or use docker (WB_VMM_BACKEND=docker)"
        )
    );
    assert_eq!(
        xtask::local::backend::container::rlimit_hint("Error: no such image"),
        None
    );
}

#[test]
fn doctor_with_no_working_backend_says_what_to_do_and_exits_1() {
    let mut sb = Sandbox::new();
    let empty = sb.path().join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    sb.set("PATH", empty.display().to_string());
    sb.set("WB_ENGINE_BIN", "/nonexistent/wb-engine");
    let run = sb.deploy(&["doctor"]);
    run.expect_code(1);
    let lines: Vec<&str> = run.stderr.lines().collect();
    for want in [
        "  absent   docker       a local container backend (its daemon answers `docker info`) — install docker, or use podman",
        "  absent   podman       a local container backend (it ran a container: `podman init` of the engine image) — install podman (rootless works), or use docker",
        "  absent   engine image what the container backends run (localhost/wb-engine:dev) — no container tool to hold it (only the process backend can run)",
        "  absent   wb-engine    the process backend's engine — WB_ENGINE_BIN=/nonexistent/wb-engine is not a file — point it at a wb-engine binary",
        "apply cannot pick a local backend: no local backend works here — see each line above; `cargo xtask deploy doctor` again after the fix",
    ] {
        assert!(
            lines.contains(&want),
            "missing {want:?} in:\n{}",
            run.stderr
        );
    }
    let v = sb.deploy(&["doctor", "--json"]).json();
    assert_eq!(v["ok"], false);
    assert_eq!(v["backend"], serde_json::Value::Null);
}

#[test]
fn doctor_runs_a_real_podman_container_and_names_the_pick() {
    if !wb_tests::require_tool("podman") {
        return;
    }
    let mut sb = Sandbox::new();
    sb.set(
        "CONTAINERS_CONF",
        wb_tests::repo_root()
            .join("tests/containers.conf")
            .display()
            .to_string(),
    );
    sb.set(
        "WB_ENGINE_BIN",
        wb_tests::engine_bin().display().to_string(),
    );
    // The reference image must be in podman's store for the container probe.
    let has_image = std::process::Command::new("podman")
        .args(["image", "exists", "localhost/wb-engine:dev"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_image {
        let built = sb
            .kit(&["engine", "image"])
            .env("WB_VMM_BACKEND", "podman")
            .output()
            .unwrap();
        assert!(
            built.status.success(),
            "{}",
            String::from_utf8_lossy(&built.stderr)
        );
    }
    let run = sb.deploy(&["doctor"]);
    run.expect_code(0);
    assert!(
        run.stderr.lines().any(|l| l
            == "  ok       podman       a local container backend (it ran a container: `podman init` of the engine image)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .lines()
            .any(|l| l == "apply would run local deployments with: podman"
                || l == "apply would run local deployments with: docker"),
        "{}",
        run.stderr
    );
    let left = std::process::Command::new("podman")
        .args([
            "ps",
            "-a",
            "--filter",
            "name=wb-doctor-",
            "--format",
            "{{.Names}}",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "",
        "the probe container is removed"
    );
}
