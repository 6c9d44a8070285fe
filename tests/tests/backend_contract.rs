//! The local backend contract, one suite run on every backend: `process`, `podman` and
//! `docker` (a real daemon; CI starts it). The built kit drives the real reference
//! engine — a detached process, or the FROM-scratch image the kit builds with the
//! backend's own tool — and the tests talk HTTP to the published loopback port.
//!
//! Every contract function takes the backend; [`suite!`] makes one `#[test]` per
//! backend and function (`process::…`, `podman::…`, `docker::…`). The few things that
//! differ per backend (identity, env, kill, a broken engine) live in
//! `local_support/backends.rs`. A backend that cannot run here is skipped with a printed
//! reason, and is a failure under `WB_REQUIRE_TOOLS=1`. Backend-specific behaviour is
//! tested beside it: `local_process.rs`, `local_podman.rs`.

mod local_support;

use std::time::{Duration, Instant};

use local_support::backends::{Kind, REFERENCE_IMAGE};
use local_support::*;
use wb_tests::Sandbox;

/// `down` through the kit, then (containers) removes whatever is labelled for `id`.
fn guard<'a>(kind: Kind, sb: &'a Sandbox, file: &str, id: &str) -> DownOnDrop<'a> {
    let mut g = DownOnDrop::new(sb, file);
    if kind.is_container() {
        let id = id.to_string();
        g.extra = Some(Box::new(move || kind.remove_containers(&id)));
    }
    g
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

fn full_arc(kind: Kind) {
    let Some(sb) = kind.sandbox() else { return };
    let id = unique_id("ct-arc");
    let file = write_deployment(&sb, &id, "", "");
    let _guard = guard(kind, &sb, &file, &id);

    let v = apply_ok(&sb, &file);
    assert_eq!(v["backend"], kind.name());
    assert_eq!(v["action"], "created");
    if kind.is_container() {
        assert_eq!(v["container"], format!("wb-{id}"));
        assert_eq!(
            v["image"], REFERENCE_IMAGE,
            "the default IMAGE is absent: the reference image runs"
        );
    }
    let engine = kind.identity(&v);
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
    assert_eq!(port_of(&url), ep.port);
    let book = workbook_bytes();
    assert_eq!(
        http("PUT", ep.port, "/workbooks/book.wb", &ep.token, &book).0,
        201
    );

    let down = sb.deploy(&["down", &file]);
    down.expect_code(0);
    let data = data_dir(&sb, &id);
    assert!(
        down.stderr.contains(&format!(
            "runtime down — data preserved at {}",
            data.display()
        )),
        "{}",
        down.stderr
    );
    assert!(!kind.exists(&engine), "down removed the engine");
    assert!(
        data.join("registry.db").is_file(),
        "the registry lives in the data dir"
    );
    assert!(
        !ep.discovery.exists(),
        "SIGTERM let the engine remove runtime.json"
    );

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

fn second_apply_keeps_the_engine_force_and_changes_replace_it(kind: Kind) {
    let Some(sb) = kind.sandbox() else { return };
    let id = unique_id("ct-idem");
    let file = write_deployment(&sb, &id, "", "");
    let _guard = guard(kind, &sb, &file, &id);

    let first = apply_ok(&sb, &file);
    let engine = kind.identity(&first);
    let discovery = first["discovery"].as_str().unwrap().to_string();
    let runtime_before = std::fs::read_to_string(&discovery).unwrap();

    let second = apply_ok(&sb, &file);
    assert_eq!(second["action"], "unchanged");
    assert_eq!(kind.identity(&second), engine, "the same engine");
    assert_eq!(second["url"], first["url"]);
    assert_eq!(
        std::fs::read_to_string(&discovery).unwrap(),
        runtime_before,
        "the discovery file is untouched"
    );
    assert!(kind.running(&engine));

    let forced = sb.deploy(&["apply", &file, "--force", "--json"]);
    forced.expect_code(0);
    let forced = forced.json();
    assert_eq!(forced["action"], "replaced");
    let replacement = kind.identity(&forced);
    assert_ne!(replacement, engine, "--force replaces the engine");
    assert!(!kind.exists(&engine), "the replaced engine is gone");
    assert_eq!(
        forced["url"], first["url"],
        "the port is kept across a replacement"
    );
    sb.deploy(&["verify", &file]).expect_code(0);

    // A changed deployment (a new property in the engine env) is replaced.
    write_deployment(&sb, &id, ":PROFILE: /profiles/a\n", "");
    let changed = sb.deploy(&["apply", &file, "--json"]);
    changed.expect_code(0);
    assert!(
        changed.stderr.contains("env:WB_PROFILE_DIR added"),
        "{}",
        changed.stderr
    );
    let changed = changed.json();
    assert_eq!(changed["action"], "replaced");
    assert_ne!(kind.identity(&changed), replacement);
    let env = kind.engine_env(&changed);
    assert!(
        env.iter().any(|e| e == "WB_PROFILE_DIR=/profiles/a"),
        "{env:?}"
    );
    sb.deploy(&["verify", &file]).expect_code(0);
}

fn a_taken_port_moves_to_another_free_one(kind: Kind) {
    let Some(sb) = kind.sandbox() else { return };
    let id = unique_id("ct-port");
    let file = write_deployment(&sb, &id, "", "");
    let _guard = guard(kind, &sb, &file, &id);

    let first = apply_ok(&sb, &file);
    let url = first["url"].as_str().unwrap().to_string();
    let port = port_of(&url);
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
    assert_ne!(second.json()["url"].as_str().unwrap(), url);
    sb.deploy(&["verify", &file]).expect_code(0);
    drop(squatter);
}

fn an_engine_that_fails_at_boot_fails_apply_with_its_log(kind: Kind) {
    let Some(mut sb) = kind.sandbox() else { return };
    let id = unique_id("ct-crash");
    let crash = kind.crash(&mut sb, &id);
    let file = crash.file.clone();
    let _guard = guard(kind, &sb, &file, &id);

    let started = Instant::now();
    let (run, v) = json(&sb, "apply", &file);
    run.expect_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "failed fast, not after the 20 s discovery timeout: took {:?}",
        started.elapsed()
    );
    assert!(run.stderr.contains(crash.exit), "{}", run.stderr);
    assert!(run.stderr.contains(crash.log), "{}", run.stderr);
    assert!(
        v["error"]["message"].as_str().unwrap().contains(crash.log),
        "{v}"
    );
    assert!(!run.stderr.contains("runtime up"), "{}", run.stderr);

    let status = json(&sb, "status", &file).1;
    assert_eq!(status["running"], false);
    assert_eq!(status["state"], "stopped");
    let logs = sb.deploy(&["logs", &file]);
    logs.expect_code(0);
    assert!(logs.stdout.contains(crash.log), "{}", logs.stdout);

    // A working engine again: apply cleans the dead one up and recovers.
    crash.repair(&sb, &id);
    let again = sb.deploy(&["apply", &file]);
    again.expect_code(0);
    assert!(
        again.stderr.contains("cleaning up after a run that died"),
        "{}",
        again.stderr
    );
    sb.deploy(&["verify", &file]).expect_code(0);
}

fn a_killed_engine_is_detected_cleaned_and_recovered(kind: Kind) {
    let Some(sb) = kind.sandbox() else { return };
    let id = unique_id("ct-stale");
    let file = write_deployment(&sb, &id, "", "");
    let _guard = guard(kind, &sb, &file, &id);

    let first = apply_ok(&sb, &file);
    let engine = kind.identity(&first);
    let ep = endpoint(&sb, &file);
    assert_eq!(
        http("PUT", ep.port, "/workbooks/keep.wb", &ep.token, b"kept").0,
        201
    );

    kind.kill9(&first);
    // The kill is done when the engine has stopped and its port is released: after
    // `kill -9` the engine's last threads (and a container's port forwarding) hold the
    // listening socket a moment longer, and a connection then is reset, not refused.
    assert!(
        eventually(Duration::from_secs(10), || !kind.running(&engine)),
        "the killed engine stopped"
    );
    assert!(
        eventually(Duration::from_secs(10), || !listening(ep.port)),
        "nothing listens on {} after the kill",
        ep.port
    );
    assert!(ep.discovery.exists(), "kill -9 leaves a stale runtime.json");
    if kind == Kind::Process {
        assert!(
            sb.wb_home().join(&id).join("engine.pid").exists(),
            "and a stale pid file"
        );
    }

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
    assert_ne!(kind.identity(&again.json()), engine);
    let ep = endpoint(&sb, &file);
    let (status, body) = http("GET", ep.port, "/workbooks/keep.wb", &ep.token, b"");
    assert_eq!((status, body), (200, b"kept".to_vec()));
}

fn down_twice_is_fine_and_verify_on_a_stopped_engine_says_why(kind: Kind) {
    let Some(sb) = kind.sandbox() else { return };
    let id = unique_id("ct-twice");
    let file = write_deployment(&sb, &id, "", "");
    let _guard = guard(kind, &sb, &file, &id);

    // Before anything ran.
    sb.deploy(&["down", &file]).expect_code(0);
    let verify = sb.deploy(&["verify", &file]);
    verify.expect_code(1);
    assert!(
        verify
            .stderr
            .contains(&format!("nothing is running for `{id}`")),
        "{}",
        verify.stderr
    );

    apply_ok(&sb, &file);
    sb.deploy(&["down", &file]).expect_code(0);
    let (run, v) = json(&sb, "down", &file);
    run.expect_code(0);
    assert!(run.stderr.contains("runtime down — data preserved at"));
    assert_eq!(v["was_running"], false);

    let verify = sb.deploy(&["verify", &file]);
    verify.expect_code(1);
    assert!(
        verify.stderr.contains("nothing is running"),
        "{}",
        verify.stderr
    );
    sb.deploy(&["url", &file]).expect_code(1);
}

/// The canary reaches the engine's environment and nothing else: no argv of any process
/// while the kit runs (`/proc/*/cmdline`, sampled throughout), no stream of any verb,
/// no `--json`, no engine log; for containers, nothing the tool keeps about the
/// container but `Config.Env` (where docker — and podman today — keep the engine env).
fn a_canary_secret_reaches_the_engine_env_and_no_argv(kind: Kind) {
    let Some(mut sb) = kind.sandbox() else { return };
    let canary = format!("canary-{}-{}", std::process::id(), "d41d8cd98f00b204");
    sb.set("CANARY_SECRET", canary.clone());
    let id = unique_id("ct-canary");
    let file = write_deployment(&sb, &id, "", "#+DEPLOY_SECRETS: CANARY_SECRET\n");
    let _guard = guard(kind, &sb, &file, &id);
    let sampler = ArgvSampler::start(&canary, &file);

    let (run, v) = json(&sb, "apply", &file);
    run.expect_code(0);
    run.assert_no_canary(&[&canary]);

    let env = kind.engine_env(&v);
    assert!(
        env.contains(&format!("CANARY_SECRET={canary}")),
        "the engine got the value in its env"
    );
    match kind {
        Kind::Process => {
            assert!(
                !env.iter().any(|e| e.starts_with("HOME=")),
                "nothing but the engine env (and PATH) leaks in: {env:?}"
            );
        }
        Kind::Podman | Kind::Docker => {
            let kept = kind.inspect_without_env(&v).to_string();
            assert!(
                !kept.contains(&canary),
                "the value leaked into {} inspect outside Config.Env: {kept}",
                kind.name()
            );
            if kind == Kind::Podman {
                let create = kind.inspect(v["container"].as_str().unwrap()).unwrap()["Config"]
                    ["CreateCommand"]
                    .to_string();
                // podman: a secret value goes through `podman secret` (SPEC §18).
                assert!(
                    create.contains(&format!(
                        "\"--secret\",\"wb-{id}-CANARY_SECRET,type=env,target=CANARY_SECRET\""
                    )),
                    "passed as a podman secret: {create}"
                );
            }
        }
    }

    for verb in ["plan", "status", "verify", "logs", "url"] {
        let run = sb.deploy(&[verb, &file, "--json"]);
        run.expect_code(0);
        run.assert_no_canary(&[&canary]);
    }
    let apply_again = sb.deploy(&["apply", &file]);
    apply_again.expect_code(0);
    apply_again.assert_no_canary(&[&canary]);
    let down = sb.deploy(&["down", &file, "--json"]);
    down.expect_code(0);
    down.assert_no_canary(&[&canary]);
    sampler.finish();
    if kind == Kind::Process {
        // The containers' log is the tool's: `logs --json` above carried it.
        let log = read(&sb.wb_home().join(&id).join("engine.log"));
        assert!(contains(&log, "wb-engine"), "the engine log is there");
        assert!(
            !contains(&log, &canary),
            "the engine logs names, never values"
        );
    }
}

/// One `#[test]` per backend and contract function.
macro_rules! suite {
    ($($backend:ident => $kind:expr),* $(,)?) => {$(
        mod $backend {
            use super::*;

            #[test]
            fn full_arc_apply_verify_write_down_apply_read_down() {
                full_arc($kind)
            }

            #[test]
            fn second_apply_keeps_the_engine_force_and_changes_replace_it() {
                super::second_apply_keeps_the_engine_force_and_changes_replace_it($kind)
            }

            #[test]
            fn a_taken_port_moves_to_another_free_one() {
                super::a_taken_port_moves_to_another_free_one($kind)
            }

            #[test]
            fn an_engine_that_fails_at_boot_fails_apply_with_its_log() {
                super::an_engine_that_fails_at_boot_fails_apply_with_its_log($kind)
            }

            #[test]
            fn a_killed_engine_is_detected_cleaned_and_recovered() {
                super::a_killed_engine_is_detected_cleaned_and_recovered($kind)
            }

            #[test]
            fn down_twice_is_fine_and_verify_on_a_stopped_engine_says_why() {
                super::down_twice_is_fine_and_verify_on_a_stopped_engine_says_why($kind)
            }

            #[test]
            fn a_canary_secret_reaches_the_engine_env_and_no_argv() {
                super::a_canary_secret_reaches_the_engine_env_and_no_argv($kind)
            }
        }
    )*};
}

suite! {
    process => Kind::Process,
    podman => Kind::Podman,
    docker => Kind::Docker,
}
