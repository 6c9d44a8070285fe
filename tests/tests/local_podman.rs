//! The local place on podman, end to end: the built kit runs the reference engine's
//! FROM-scratch image (built once per test process with `cargo xtask engine image`)
//! and the test talks HTTP to the published loopback port.
//!
//! Skips loudly without podman (fails with WB_REQUIRE_TOOLS=1). Every test uses its own
//! deployment id (so its own container `wb-<id>`) and removes it on the way out.

mod local_support;

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use local_support::*;
use serde_json::Value;
use wb_tests::Sandbox;

const BROKEN_IMAGE: &str = "localhost/wb-engine-broken:test";

/// podman in this kind of sandbox needs a containers.conf; a CI machine may bring its own.
fn containers_conf() -> String {
    std::env::var("CONTAINERS_CONF")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            wb_tests::repo_root()
                .join("tests/containers.conf")
                .display()
                .to_string()
        })
}

fn podman(args: &[&str]) -> std::process::Output {
    Command::new("podman")
        .args(args)
        .env("CONTAINERS_CONF", containers_conf())
        .output()
        .expect("podman runs")
}

/// The reference image via the kit's own `engine image`, and a broken variant of it
/// (an engine that refuses its configuration at boot), once per test process.
fn images() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let out = Command::new(wb_tests::kit_bin())
            .args(["engine", "image"])
            .current_dir(wb_tests::repo_root())
            .env("CONTAINERS_CONF", containers_conf())
            .env("WB_VMM_BACKEND", "podman")
            .output()
            .expect("the kit runs");
        assert!(
            out.status.success(),
            "engine image failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ctx = tempfile::tempdir().unwrap();
        std::fs::write(
            ctx.path().join("Containerfile"),
            "FROM localhost/wb-engine:dev\nENV WB_BIND=not-an-ip\n",
        )
        .unwrap();
        let out = podman(&[
            "build",
            "-q",
            "-t",
            BROKEN_IMAGE,
            &ctx.path().display().to_string(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// A sandbox on podman, or `None` (skipped) without podman.
fn sandbox() -> Option<Sandbox> {
    if !wb_tests::require_tool("podman") {
        return None;
    }
    images();
    let mut sb = Sandbox::new();
    sb.set("WB_VMM_BACKEND", "podman");
    sb.set("CONTAINERS_CONF", containers_conf());
    Some(sb)
}

/// `down` through the kit, then `podman rm -f` whatever is left of `wb-<id>`.
fn guard<'a>(sb: &'a Sandbox, file: &str, id: &str) -> DownOnDrop<'a> {
    let mut g = DownOnDrop::new(sb, file);
    let name = format!("wb-{id}");
    g.extra = Some(Box::new(move || {
        let _ = podman(&["rm", "-f", &name]);
    }));
    g
}

fn container_id(id: &str) -> Option<String> {
    let out = podman(&[
        "inspect",
        "--type",
        "container",
        "--format",
        "{{.Id}}",
        &format!("wb-{id}"),
    ]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn inspect(id: &str) -> Value {
    let out = podman(&["inspect", "--type", "container", &format!("wb-{id}")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0].clone()
}

#[test]
fn podman_full_arc_apply_verify_write_down_apply_read_down() {
    let Some(sb) = sandbox() else { return };
    let id = unique_id("pd-arc");
    let file = write_deployment(&sb, &id, "", "");
    let _guard = guard(&sb, &file, &id);

    let v = apply_ok(&sb, &file);
    assert_eq!(v["backend"], "podman");
    assert_eq!(v["container"], format!("wb-{id}"));
    assert_eq!(
        v["image"], "localhost/wb-engine:dev",
        "the default IMAGE is absent: the reference image runs"
    );
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
    assert!(container_id(&id).is_none(), "the container is removed");
    assert!(data.join("registry.db").is_file());
    assert!(
        !ep.discovery.exists(),
        "SIGTERM let the engine remove runtime.json"
    );

    apply_ok(&sb, &file);
    let ep = endpoint(&sb, &file);
    let (status, body) = http("GET", ep.port, "/workbooks/book.wb", &ep.token, b"");
    assert_eq!(status, 200);
    assert_eq!(body, book, "the workbook survived down/apply byte for byte");

    sb.deploy(&["down", &file]).expect_code(0);
    sb.deploy(&["down", &file]).expect_code(0);
}

#[test]
fn podman_second_apply_keeps_the_same_container() {
    let Some(sb) = sandbox() else { return };
    let id = unique_id("pd-idem");
    let file = write_deployment(&sb, &id, "", "");
    let _guard = guard(&sb, &file, &id);

    let first = apply_ok(&sb, &file);
    let before = container_id(&id).expect("a container");
    let second = apply_ok(&sb, &file);
    assert_eq!(second["action"], "unchanged");
    assert_eq!(
        container_id(&id).as_deref(),
        Some(before.as_str()),
        "the same container"
    );
    assert_eq!(second["url"], first["url"]);

    let forced = sb.deploy(&["apply", &file, "--force", "--json"]);
    forced.expect_code(0);
    assert_eq!(forced.json()["action"], "replaced");
    let after = container_id(&id).expect("a container");
    assert_ne!(after, before, "--force replaces the container");
    sb.deploy(&["verify", &file]).expect_code(0);
}

#[test]
fn podman_a_taken_port_moves_to_another_free_one() {
    let Some(sb) = sandbox() else { return };
    let id = unique_id("pd-port");
    let file = write_deployment(&sb, &id, "", "");
    let _guard = guard(&sb, &file, &id);

    let first = apply_ok(&sb, &file);
    let url = first["url"].as_str().unwrap().to_string();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    sb.deploy(&["down", &file]).expect_code(0);

    let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).expect("free after down");
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

#[test]
fn podman_an_engine_that_fails_at_boot_fails_apply_with_its_log() {
    let Some(sb) = sandbox() else { return };
    let id = unique_id("pd-crash");
    let file = write_deployment(&sb, &id, &format!(":IMAGE: {BROKEN_IMAGE}\n"), "");
    let _guard = guard(&sb, &file, &id);

    let started = Instant::now();
    let (run, v) = json(&sb, "apply", &file);
    run.expect_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "failed fast, took {:?}",
        started.elapsed()
    );
    assert!(run.stderr.contains("exited with code 2"), "{}", run.stderr);
    assert!(run.stderr.contains("invalid WB_BIND"), "{}", run.stderr);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid WB_BIND")
    );

    let status = json(&sb, "status", &file).1;
    assert_eq!(status["state"], "stopped");
    let logs = sb.deploy(&["logs", &file]);
    logs.expect_code(0);
    assert!(logs.stdout.contains("invalid WB_BIND"), "{}", logs.stdout);

    // Back to the working image: apply cleans the dead container up and recovers.
    write_deployment(&sb, &id, "", "");
    let again = sb.deploy(&["apply", &file]);
    again.expect_code(0);
    assert!(
        again.stderr.contains("cleaning up after a run that died"),
        "{}",
        again.stderr
    );
    sb.deploy(&["verify", &file]).expect_code(0);
}

#[test]
fn podman_a_killed_container_is_detected_cleaned_and_recovered() {
    let Some(sb) = sandbox() else { return };
    let id = unique_id("pd-stale");
    let file = write_deployment(&sb, &id, "", "");
    let _guard = guard(&sb, &file, &id);

    apply_ok(&sb, &file);
    let ep = endpoint(&sb, &file);
    assert_eq!(
        http("PUT", ep.port, "/workbooks/keep.wb", &ep.token, b"kept").0,
        201
    );

    let out = podman(&["kill", "--signal", "KILL", &format!("wb-{id}")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while inspect(&id)["State"]["Running"] == true && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ep.discovery.exists(), "SIGKILL leaves a stale runtime.json");

    let verify = sb.deploy(&["verify", &file]);
    verify.expect_code(1);
    assert!(
        verify.stderr.contains("nothing listening on 127.0.0.1"),
        "{}",
        verify.stderr
    );

    let again = sb.deploy(&["apply", &file]);
    again.expect_code(0);
    assert!(
        again.stderr.contains("cleaning up after a run that died"),
        "{}",
        again.stderr
    );
    let ep = endpoint(&sb, &file);
    let (status, body) = http("GET", ep.port, "/workbooks/keep.wb", &ep.token, b"");
    assert_eq!((status, body), (200, b"kept".to_vec()));
}

#[test]
fn podman_a_canary_secret_is_in_the_container_env_only() {
    let Some(mut sb) = sandbox() else { return };
    let canary = format!("canary-{}-{}", std::process::id(), "9e107d9d372bb682");
    sb.set("CANARY_SECRET", canary.clone());
    let id = unique_id("pd-canary");
    let file = write_deployment(&sb, &id, "", "#+DEPLOY_SECRETS: CANARY_SECRET\n");
    let _guard = guard(&sb, &file, &id);

    let (run, _) = json(&sb, "apply", &file);
    run.expect_code(0);
    run.assert_no_canary(&[&canary]);

    let c = inspect(&id);
    for field in [
        &c["Args"],
        &c["Path"],
        &c["Config"]["Cmd"],
        &c["Config"]["Entrypoint"],
        &c["Config"]["CreateCommand"],
    ] {
        assert!(
            !field.to_string().contains(&canary),
            "the value leaked into {field}"
        );
    }
    let create = c["Config"]["CreateCommand"].to_string();
    assert!(
        create.contains(&format!(
            "\"--secret\",\"wb-{id}-CANARY_SECRET,type=env,target=CANARY_SECRET\""
        )),
        "passed as a podman secret: {create}"
    );
    let env = c["Config"]["Env"].to_string();
    assert!(
        env.contains(&format!("CANARY_SECRET={canary}")),
        "the engine got the value in its env"
    );

    for verb in ["status", "verify", "logs", "url"] {
        let run = sb.deploy(&[verb, &file, "--json"]);
        run.expect_code(0);
        run.assert_no_canary(&[&canary]);
    }
    let down = sb.deploy(&["down", &file, "--json"]);
    down.expect_code(0);
    down.assert_no_canary(&[&canary]);
}
