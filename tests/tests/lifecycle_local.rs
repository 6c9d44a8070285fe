//! Releases and rollback locally on podman (SPEC §14): two image tags, apply v1, apply
//! v2, rollback → v1 runs by its image ID (even after the tag moved), `releases --json`
//! lists three; a rollback to a release whose image is gone fails and changes nothing.

mod local_support;

use std::process::Command;

use local_support::*;
use serde_json::Value;
use wb_tests::Sandbox;

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

/// An image of the reference engine with its own ID (a label makes it differ), tagged.
fn tagged(tag: &str, label: &str) -> String {
    if !podman(&["image", "exists", "localhost/wb-engine:dev"])
        .status
        .success()
    {
        let out = Command::new(wb_tests::kit_bin())
            .args(["engine", "image"])
            .current_dir(wb_tests::repo_root())
            .env("CONTAINERS_CONF", containers_conf())
            .env("WB_VMM_BACKEND", "podman")
            .output()
            .expect("the kit runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Containerfile"),
        format!("FROM localhost/wb-engine:dev\nLABEL sh.workbooks.test={label}\n"),
    )
    .unwrap();
    let out = podman(&["build", "-q", "-t", tag, &ctx.path().display().to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    image_id(tag)
}

fn image_id(reference: &str) -> String {
    let out = podman(&["image", "inspect", "--format", "{{.Id}}", reference]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn running_image(id: &str) -> String {
    let out = podman(&[
        "inspect",
        "--type",
        "container",
        "--format",
        "{{.Image}}",
        &format!("wb-{id}"),
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn with_image(sb: &Sandbox, id: &str, image: &str) -> String {
    write_deployment(sb, id, &format!(":IMAGE: {image}\n"), "")
}

#[test]
fn podman_apply_v1_apply_v2_rollback_runs_v1_by_image_id() {
    if !wb_tests::require_tool("podman") {
        return;
    }
    let mut sb = Sandbox::new();
    sb.set("WB_VMM_BACKEND", "podman");
    sb.set("CONTAINERS_CONF", containers_conf());
    let id = unique_id("pd-life");
    let pid = std::process::id();
    let v1 = format!("localhost/wb-engine-life:v1-{pid}");
    let v2 = format!("localhost/wb-engine-life:v2-{pid}");
    let v3 = format!("localhost/wb-engine-life:v3-{pid}");
    let id1 = tagged(&v1, &format!("v1-{pid}"));
    let id2 = tagged(&v2, &format!("v2-{pid}"));
    let id3 = tagged(&v3, &format!("v3-{pid}"));
    let file = with_image(&sb, &id, &v1);
    let _guard = {
        let mut g = DownOnDrop::new(&sb, &file);
        let name = format!("wb-{id}");
        let images = [v1.clone(), v2.clone(), v3.clone()];
        g.extra = Some(Box::new(move || {
            let _ = podman(&["rm", "-f", &name]);
            for image in &images {
                let _ = podman(&["rmi", "-f", image]);
            }
        }));
        g
    };

    apply_ok(&sb, &file);
    assert_eq!(running_image(&id), id1);
    with_image(&sb, &id, &v2);
    apply_ok(&sb, &file);
    assert_eq!(running_image(&id), id2);
    // The v1 tag moves to v2's image: the rollback must go by ID, not by tag.
    assert!(podman(&["tag", &v2, &v1]).status.success());

    let back = sb.deploy(&["rollback", &file, "--json"]);
    back.expect_code(0);
    assert_eq!(back.json()["rolled_back_to"], 1);
    assert_eq!(running_image(&id), id1, "release 1's image, by its ID");
    let list = sb.deploy(&["releases", &file, "--json"]);
    list.expect_code(0);
    let v: Value = list.json();
    let releases = v["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 3, "{v}");
    assert_eq!(releases[0]["image_id"], id1);
    assert_eq!(releases[1]["image_id"], id2);
    assert_eq!(releases[2]["image_id"], id1);
    assert_eq!(releases[2]["action"], "rollback");
    assert_eq!(releases[2]["image"], v1);

    // A release whose image is gone: the rollback fails clearly and changes nothing.
    with_image(&sb, &id, &v3);
    apply_ok(&sb, &file);
    with_image(&sb, &id, &v2);
    apply_ok(&sb, &file);
    assert!(podman(&["rmi", "-f", &v3]).status.success());
    let gone = sb.deploy(&["rollback", &file, "--to", "4", "--json"]);
    gone.expect_code(1);
    assert_eq!(
        gone.json()["error"]["message"],
        format!(
            "release 4's image {v3} (ID {id3}) is gone from podman — rebuild or pull it, then roll back again (nothing was changed)"
        )
    );
    assert_eq!(running_image(&id), id2, "still the last release");
    let after = sb.deploy(&["releases", &file, "--json"]).json();
    assert_eq!(after["releases"].as_array().unwrap().len(), 5);
}

/// The process backend records the engine binary's path and sha256; a rollback to a
/// release whose binary changed since is refused, naming both digests' fate, and
/// nothing is stopped or recorded.
#[test]
fn process_rollback_refuses_a_changed_engine_binary() {
    let mut sb = Sandbox::new();
    let engine = sb.path().join("wb-engine");
    std::fs::copy(wb_tests::engine_bin(), &engine).unwrap();
    sb.set("WB_VMM_BACKEND", "process");
    sb.set("WB_ENGINE_BIN", engine.display().to_string());
    let id = unique_id("pr-life");
    let file = write_deployment(&sb, &id, "", "");
    let _guard = DownOnDrop::new(&sb, &file);
    apply_ok(&sb, &file);
    let file = write_deployment(&sb, &id, ":PORT: 4011\n", "");
    apply_ok(&sb, &file);
    let list = sb.deploy(&["releases", &file, "--json"]).json();
    let recorded = list["releases"][0]["image_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        recorded.starts_with(&format!("{} sha256:", engine.display())),
        "{recorded}"
    );
    // The same binary: the rollback runs.
    sb.deploy(&["rollback", &file]).expect_code(0);
    // A rebuilt binary: refused.
    let mut bytes = std::fs::read(&engine).unwrap();
    bytes.extend_from_slice(b"\0rebuilt");
    // Replaced the way a build does (the running one stays busy): a new file renamed over.
    let fresh = sb.path().join("wb-engine.new");
    std::fs::write(&fresh, &bytes).unwrap();
    std::fs::set_permissions(&fresh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::rename(&fresh, &engine).unwrap();
    let refused = sb.deploy(&["rollback", &file, "--to", "2", "--json"]);
    refused.expect_code(1);
    let message = refused.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    let digest = recorded.rsplit_once(' ').unwrap().1.to_string();
    assert!(
        message.starts_with(&format!(
            "release 2 ran the engine binary {} ({digest}); it is changed (sha256:",
            engine.display()
        )),
        "{message}"
    );
    assert!(
        message.ends_with("— refusing to roll back to a different binary (nothing was changed)")
    );
    let after = sb.deploy(&["releases", &file, "--json"]).json();
    assert_eq!(after["releases"].as_array().unwrap().len(), 3);
}

/// Drift locally: the backend's probe plays the part of the recipe's `state:` line. An
/// engine stopped behind the kit's back shows in `plan --live`, and `apply` restarts it.
#[test]
fn process_plan_live_shows_an_engine_stopped_behind_the_kits_back() {
    let mut sb = Sandbox::new();
    sb.set("WB_VMM_BACKEND", "process");
    sb.set(
        "WB_ENGINE_BIN",
        wb_tests::engine_bin().display().to_string(),
    );
    let id = unique_id("pr-drift");
    let file = write_deployment(&sb, &id, "", "");
    let _guard = DownOnDrop::new(&sb, &file);
    let up = apply_ok(&sb, &file);
    let quiet = sb.deploy(&["plan", &file, "--live", "--json"]).json();
    assert_eq!(quiet["drift"], serde_json::json!([]));
    let pid = up["pid"].as_u64().unwrap() as i32;
    // SAFETY: SIGKILL to the engine this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let plan = sb.deploy(&["plan", &file, "--live", "--json"]).json();
    let drift = plan["drift"].as_array().unwrap();
    assert_eq!(drift.len(), 1, "{plan}");
    let line = drift[0].as_str().unwrap();
    assert!(
        line.starts_with("re-create: the engine of release 1 is ")
            && line.ends_with(" (the backend's probe)"),
        "{line}"
    );
    assert!(plan["changes"].as_array().unwrap().contains(&drift[0]));
    let again = apply_ok(&sb, &file);
    assert_ne!(again["action"], "unchanged");
}
