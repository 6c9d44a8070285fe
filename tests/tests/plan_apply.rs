//! One plan: for every shipped deployment, what `plan --json` says `apply` would change
//! is what `apply --json` then reports it changed — on the first apply, on an unchanged
//! re-apply, and after an edit. Local deployments run on the process backend with the
//! reference engine; cloud ones against the flyctl double.

mod cloud_support;

use serde_json::Value;
use wb_tests::{Sandbox, engine_bin, repo_root};

fn changes(v: &Value) -> Vec<String> {
    v["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("no changes in {v}"))
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

/// `plan --json`'s changes, with the "nothing" sentence read as no change.
fn planned(sb: &Sandbox, file: &str) -> Vec<String> {
    let run = sb.deploy(&["plan", file, "--json"]);
    run.expect_code(0);
    let mut out = changes(&run.json());
    out.retain(|c| c != "nothing — the deployment is as last applied");
    out
}

fn applied(sb: &Sandbox, file: &str) -> Vec<String> {
    let run = sb.deploy(&["apply", file, "--json"]);
    run.expect_code(0);
    changes(&run.json())
}

/// Plan, apply, compare — three times: first apply, unchanged, after `edit`.
fn agree(sb: &Sandbox, file: &str, edit: impl Fn(&str) -> String) {
    let first = planned(sb, file);
    assert!(!first.is_empty(), "{file}: a first plan changes something");
    assert_eq!(applied(sb, file), first, "{file}: first apply");
    assert_eq!(planned(sb, file), Vec::<String>::new(), "{file}: re-plan");
    assert_eq!(applied(sb, file), Vec::<String>::new(), "{file}: re-apply");
    let path = sb.work().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(&text)).unwrap();
    let edited = planned(sb, file);
    assert!(!edited.is_empty(), "{file}: the edit is a change");
    assert_eq!(applied(sb, file), edited, "{file}: apply after the edit");
}

fn shipped(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("deployments").join(name)).unwrap()
}

#[test]
fn local_deployments_plan_what_apply_does() {
    for file in ["local.org", "local-oidc.org"] {
        let mut sb = Sandbox::new();
        sb.set("WB_VMM_BACKEND", "process");
        sb.set("WB_ENGINE_BIN", engine_bin().display().to_string());
        sb.write(&format!("work/{file}"), &shipped(file));
        agree(&sb, file, |t| {
            t.replace(":END:", ":PROFILE: /profiles/a\n:END:")
        });
        sb.deploy(&["down", file]).expect_code(0);
    }
}

#[test]
fn cloud_deployments_plan_what_apply_does() {
    if !cloud_support::double_ready() {
        return;
    }
    for file in ["cloud-single.org", "cloud-saas.org"] {
        let sb = cloud_support::fly_sandbox(file);
        agree(&sb, file, |t| {
            t.replace(":END:", ":IMAGE: ghcr.io/workbooks-sh/runtime:v2\n:END:")
        });
    }
}
