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
    for name in ["CARGO", "CARGO_HOME", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN", "CARGO_TARGET_DIR"] {
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
                run.stderr.lines().any(|l| l
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
        let file = write_deployment(&sb, &unique_id(if asked { "loud" } else { "quiet" }), "", "");
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
