//! `SCALE: N` on the local place (SPEC §12, §18 "Local SCALE") against a real
//! PostgreSQL (initdb + pg_ctl in a temp dir, unix socket, stopped on drop — also on
//! panic): N engines, each on its own loopback port, one shared registry; `status`
//! lists them, `verify` checks each, `down` keeps data, a smaller SCALE stops the
//! extra ones, kill -9 of one is restored without touching the others, and a DSN that
//! cannot connect fails the apply with the engine's message (never its password) and
//! leaves nothing running. Process, podman and docker; `WB_REQUIRE_TOOLS=1` makes a missing
//! PostgreSQL or podman a failure.

mod local_support;

#[path = "../../engine/tests/common/pg.rs"]
#[allow(dead_code)]
mod pg;

use local_support::backends::Kind;
use local_support::*;
use serde_json::Value;
use wb_tests::Sandbox;

fn scaled(sb: &Sandbox, id: &str, scale: u16) -> String {
    let text = format!(
        "* {id} :deployment:\n:PROPERTIES:\n:ID: {id}\n:ENGINE_PLACE: local\n:TENANCY_MODE: single\n:STORAGE: local-fs\n:DATABASE: postgres\n:AUTH: trusted\n:SCALE: {scale}\n:END:\n"
    );
    let file = format!("{id}.org");
    sb.write(&format!("work/{file}"), &text);
    file
}

/// Each instance as `status --json` lists it: (port, token, pid).
fn instances(sb: &Sandbox, file: &str) -> Vec<(u16, String, Option<u32>)> {
    let (run, v) = json(sb, "status", file);
    run.expect_code(0);
    let list = v["instances"].as_array().expect("instances").clone();
    assert_eq!(
        v["url"], list[0]["url"],
        "the top-level url is instance 1's"
    );
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            assert_eq!(m["index"], i + 1);
            assert_eq!(m["healthy"], true, "{v}");
            let url = m["url"].as_str().unwrap();
            let port = url.rsplit(':').next().unwrap().parse().unwrap();
            let disco: Value = serde_json::from_str(
                &std::fs::read_to_string(m["discovery"].as_str().unwrap()).unwrap(),
            )
            .unwrap();
            let pid = m["pid"].as_u64().map(|p| p as u32);
            (port, disco["token"].as_str().unwrap().to_string(), pid)
        })
        .collect()
}

fn read_everywhere(all: &[(u16, String, Option<u32>)], bytes: &[u8]) {
    for (port, token, _) in all {
        let (status, body) = http("GET", *port, "/workbooks/shared.wb", token, b"");
        assert_eq!(status, 200, "instance on port {port}");
        assert!(
            body == bytes,
            "instance on port {port} reads the same bytes"
        );
    }
}

fn scaled_arc(kind: Kind) {
    let Some(pg) = pg::Pg::start() else { return };
    let Some(mut sb) = kind.sandbox() else { return };
    sb.set("WB_DATABASE_URL", pg.socket_url());
    let id = unique_id(&format!("scale-{}", kind.name()));
    let file = scaled(&sb, &id, 3);
    let _guard = DownOnDrop::new(&sb, &file);

    let v = apply_ok(&sb, &file);
    assert_eq!(v["action"], "created", "{v}");
    let all = instances(&sb, &file);
    assert_eq!(all.len(), 3);
    let mut ports: Vec<u16> = all.iter().map(|i| i.0).collect();
    ports.dedup();
    assert_eq!(ports.len(), 3, "each on its own port");
    let url = sb.deploy(&["url", &file]);
    url.expect_code(0);
    assert_eq!(url.stdout.trim(), format!("http://127.0.0.1:{}", all[0].0));
    sb.deploy(&["verify", &file]).expect_code(0);
    let state = sb.wb_home().join(&id);
    for n in 1..=3 {
        let slot = state.join(format!("instances/{n}"));
        assert!(slot.join("disco/runtime.json").is_file(), "{n}");
        if kind == Kind::Process {
            assert!(slot.join("engine.pid").is_file() && slot.join("engine.log").is_file());
        }
    }

    // Written through instance 1, read through 2 and 3: one registry.
    let bytes = workbook_bytes();
    let (status, _) = http("PUT", all[0].0, "/workbooks/shared.wb", &all[0].1, &bytes);
    assert_eq!(status, 201);
    read_everywhere(&all, &bytes);

    // Unchanged: nothing touched.
    let again = apply_ok(&sb, &file);
    assert_eq!(again["action"], "unchanged", "{again}");

    // down stops all and keeps data; apply brings them back, the workbook still there.
    sb.deploy(&["down", &file]).expect_code(0);
    for (port, _, _) in &all {
        assert!(!listening(*port), "port {port} is closed after down");
    }
    apply_ok(&sb, &file);
    let all = instances(&sb, &file);
    read_everywhere(&all, &bytes);

    // kill -9 one instance: re-apply restores it without touching the others.
    if kind == Kind::Process {
        let victim = all[1].2.expect("a pid");
        let kept = [all[0].2.unwrap(), all[2].2.unwrap()];
        std::process::Command::new("kill")
            .args(["-9", &victim.to_string()])
            .status()
            .unwrap();
        assert!(eventually(std::time::Duration::from_secs(5), || !alive(
            victim
        )));
        apply_ok(&sb, &file);
        let now = instances(&sb, &file);
        assert_eq!(
            [now[0].2.unwrap(), now[2].2.unwrap()],
            kept,
            "the others untouched"
        );
        assert_ne!(now[1].2.unwrap(), victim);
        read_everywhere(&now, &bytes);
    } else {
        let victim = format!("wb-{id}.2");
        let out = kind.tool(&["kill", "-s", "KILL", &victim]);
        assert!(out.status.success(), "{out:?}");
        let before = kind.tool(&["inspect", "--format", "{{.Id}}", &format!("wb-{id}.1")]);
        apply_ok(&sb, &file);
        let after = kind.tool(&["inspect", "--format", "{{.Id}}", &format!("wb-{id}.1")]);
        assert_eq!(before.stdout, after.stdout, "instance 1 untouched");
        read_everywhere(&instances(&sb, &file), &bytes);
    }

    // A smaller SCALE stops the extra instance.
    let file = scaled(&sb, &id, 2);
    let v = apply_ok(&sb, &file);
    assert_ne!(v["action"], "unchanged");
    let now = instances(&sb, &file);
    assert_eq!(now.len(), 2);
    assert!(!state.join("instances/3").exists());
    read_everywhere(&now, &bytes);
}

#[test]
fn scale_three_on_process_shares_one_postgres_registry() {
    scaled_arc(Kind::Process);
}

#[test]
fn scale_three_on_podman_shares_one_postgres_registry() {
    scaled_arc(Kind::Podman);
}

#[test]
fn a_dsn_that_cannot_connect_fails_the_apply_and_leaves_nothing_running() {
    let Some(pg) = pg::Pg::start() else { return };
    let Some(mut sb) = Kind::Process.sandbox() else {
        return;
    };
    let password = "cnry-dsn-Pw9";
    sb.set("WB_DATABASE_URL", pg.tcp_url(password));
    let id = unique_id("scale-baddsn");
    let file = scaled(&sb, &id, 3);
    let _guard = DownOnDrop::new(&sb, &file);
    let (run, v) = json(&sb, "apply", &file);
    run.expect_code(1);
    run.assert_no_canary(&[password]);
    let error = v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("instance "), "{error}");
    assert!(
        error
            .to_ascii_lowercase()
            .contains("password authentication failed"),
        "the engine's own message: {error}"
    );
    let state = sb.wb_home().join(&id);
    for n in 1..=3 {
        let pid_file = state.join(format!("instances/{n}/engine.pid"));
        if let Ok(text) = std::fs::read_to_string(&pid_file) {
            let pid: u32 = text.trim().parse().unwrap();
            assert!(!alive(pid), "instance {n} (pid {pid}) was stopped");
        }
    }
    let (_, status) = json(&sb, "status", &file);
    assert_eq!(status["running"], false, "{status}");
}

#[test]
fn scale_three_on_docker_shares_one_postgres_registry() {
    scaled_arc(Kind::Docker);
}

#[test]
fn krunvm_refuses_a_scaled_deployment_before_starting_anything() {
    let mut sb = Sandbox::new();
    sb.set("WB_VMM_BACKEND", "krunvm");
    sb.set("WB_DATABASE_URL", "postgres://wb@/wb?host=/nonexistent");
    let file = scaled(&sb, "scale-krunvm", 3);
    let run = sb.deploy(&["apply", &file]);
    run.expect_code(1);
    assert!(
        run.stderr.contains(
            "SCALE: 3 runs 3 engines, each on its own loopback port, and the krunvm backend runs one VM per deployment — set WB_VMM_BACKEND=process, docker or podman, or SCALE: 1"
        ),
        "{}",
        run.stderr
    );
    assert!(!sb.wb_home().join("scale-krunvm/instances").exists());
}
