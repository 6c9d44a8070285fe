//! Golden files of the `--json` contract: `plan --json` for every shipped deployment,
//! `apply --json` and `status --json` against the flyctl double (cloud) and the reference
//! engine on the process backend (local). What varies by run — the sandbox's path, a
//! port, a pid — is replaced by a placeholder; everything else is compared whole.

mod cloud_support;

use serde_json::Value;
use wb_tests::{Run, Sandbox, engine_bin, repo_root};

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("../snapshots/json");
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    s
}

/// The JSON object of a run, with run-specific values replaced.
fn normalized(sb: &Sandbox, run: &Run) -> String {
    let mut v: Value = run.json();
    for key in ["pid"] {
        if v.get(key).is_some_and(|p| !p.is_null()) {
            v[key] = Value::String(format!("<{key}>"));
        }
    }
    let text = serde_json::to_string_pretty(&v).unwrap();
    let text = text.replace(&sb.path().display().to_string(), "<sandbox>");
    let port = regex_free_port(&text);
    match port {
        Some(p) => text.replace(&format!("127.0.0.1:{p}"), "127.0.0.1:<port>"),
        None => text,
    }
}

/// The port in the first `127.0.0.1:<port>` of `text`.
fn regex_free_port(text: &str) -> Option<String> {
    let at = text.find("127.0.0.1:")? + "127.0.0.1:".len();
    Some(
        text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect(),
    )
}

#[test]
fn plan_json_of_every_shipped_deployment() {
    settings().bind(|| {
        for name in [
            "local.org",
            "local-oidc.org",
            "cloud-single.org",
            "cloud-saas.org",
        ] {
            let sb = cloud_support::fly_sandbox(name);
            let run = sb.deploy(&["plan", name, "--json"]);
            run.expect_code(0);
            run.assert_no_canary(&cloud_support::canary_tokens());
            insta::assert_snapshot!(format!("plan@{name}"), normalized(&sb, &run));
        }
    });
}

#[test]
fn apply_and_status_json_in_the_cloud() {
    if !cloud_support::double_ready() {
        return;
    }
    let name = "cloud-single.org";
    let sb = cloud_support::fly_sandbox(name);
    settings().bind(|| {
        let apply = sb.deploy(&["apply", name, "--json"]);
        apply.expect_code(0);
        insta::assert_snapshot!("apply@cloud-single.org", normalized(&sb, &apply));
        let again = sb.deploy(&["apply", name, "--json"]);
        again.expect_code(0);
        insta::assert_snapshot!("apply-again@cloud-single.org", normalized(&sb, &again));
        let status = sb.deploy(&["status", name, "--json"]);
        status.expect_code(0);
        let v = status.json();
        // The provider's own words are the double's; the kit's fields are the contract.
        assert!(v["output"].is_string());
        let mut fields = v.clone();
        fields["output"] = Value::String("<the recipe's status output>".into());
        insta::assert_snapshot!(
            "status@cloud-single.org",
            serde_json::to_string_pretty(&fields).unwrap()
        );
    });
}

#[test]
fn apply_and_status_json_locally() {
    let name = "local.org";
    let mut sb = Sandbox::new();
    sb.set("WB_VMM_BACKEND", "process");
    sb.set("WB_ENGINE_BIN", engine_bin().display().to_string());
    let text = std::fs::read_to_string(repo_root().join("deployments").join(name)).unwrap();
    sb.write(&format!("work/{name}"), &text);
    settings().bind(|| {
        let apply = sb.deploy(&["apply", name, "--json"]);
        apply.expect_code(0);
        insta::assert_snapshot!("apply@local.org", normalized(&sb, &apply));
        let status = sb.deploy(&["status", name, "--json"]);
        status.expect_code(0);
        insta::assert_snapshot!("status@local.org", normalized(&sb, &status));
        sb.deploy(&["down", name]).expect_code(0);
        let down = sb.deploy(&["status", name, "--json"]);
        insta::assert_snapshot!("status-down@local.org", normalized(&sb, &down));
    });
}
