//! Every rendered Kubernetes manifest set passes the real schemas (SPEC §17, §18
//! "Kubernetes"): `kubernetes-validate --strict` (PyPI; offline, bundled schemas) against
//! the oldest and newest Kubernetes it bundles, each `List` item as its own document; a
//! `WARN` line (unknown kind or apiVersion) fails like an `ERROR`.
//!
//! The sets: each shipped and fixture deployment with `PROVIDER: k8s` that validates,
//! at SCALE 1 (with a volume) and 3 (shared stores), each SIZE and none, with and
//! without DOMAIN (and INGRESS_CLASS).

use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::core::deployment::{Axis, Database, Deployment, Size, Storage};
use xtask::core::render::k8s::{self, K8sInputs};
use xtask::core::secret::DeployEnv;

/// The oldest and newest Kubernetes versions `kubernetes-validate` bundles schemas for
/// (its `kubernetes-json-schema` directory: v1.25.0 … v1.37.0).
const VERSIONS: &[&str] = &["1.25.0", "1.37.0"];

/// Every valid `PROVIDER: k8s` deployment among the shipped files and the fixtures.
fn k8s_deployments() -> Vec<(String, Deployment)> {
    let root = wb_tests::repo_root();
    let env = DeployEnv::new(
        [
            ("WB_S3_KEY", "k"),
            ("WB_S3_SECRET", "s"),
            ("WB_DATABASE_URL", "postgres://u@db/wb"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string())),
        std::iter::empty(),
    );
    let mut out = Vec::new();
    for dir in ["deployments", "tests/fixtures"] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "org"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if !text.contains(":PROVIDER: k8s") {
                continue;
            }
            let stem = path.file_stem().unwrap().to_str().unwrap();
            let shown = format!("{dir}/{stem}.org");
            let (_, checked) =
                wb_tests::check_text(&shown, stem, Some(&text), None, &env, &["fly", "k8s"]);
            if let Some(d) = checked.deployment {
                out.push((shown, d));
            }
        }
    }
    assert!(
        out.len() >= 3,
        "expected the shipped and fixture k8s deployments, found {}",
        out.len()
    );
    out
}

/// The variants of one deployment: SCALE 1 with a volume and 3 without, each SIZE.
fn variants(d: &Deployment) -> Vec<(String, Deployment)> {
    let mut out = Vec::new();
    for scale in [1u16, 3] {
        for size in [None, Some(Size::T2), Some(Size::T3), Some(Size::T4)] {
            let mut v = d.clone();
            v.scale = scale;
            v.size = size;
            if scale > 1 {
                v.database = Database::Postgres;
                v.storage = Storage::S3;
            }
            let name = format!("scale{scale}-{}", size.map_or("default", |s| s.as_str()));
            out.push((name, v));
        }
    }
    out
}

/// Writes each item of a rendered List as its own document; returns the file paths.
fn unwrap_items(list: &str, dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let list: serde_json::Value = serde_json::from_str(list).expect("the List is JSON");
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().expect("items");
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = dir.join(format!(
                "{prefix}-{i}-{}.json",
                item["kind"].as_str().unwrap().to_lowercase()
            ));
            std::fs::write(&path, serde_json::to_string(item).unwrap()).unwrap();
            path
        })
        .collect()
}

/// Runs `kubernetes-validate --strict` on `files` for `version`; returns (ok, output).
fn validate(tools: &Path, version: &str, files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(tools.join("kubernetes-validate"))
        .arg("--strict")
        .args(["-k", version])
        .args(files)
        .output()
        .expect("kubernetes-validate runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let clean = out.status.success()
        && !text
            .lines()
            .any(|l| l.starts_with("WARN") || l.starts_with("ERROR"));
    (clean, text)
}

#[test]
fn every_rendered_manifest_set_passes_the_strict_schemas() {
    let Some(tools) = wb_tests::k8s::tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    for (shown, d) in k8s_deployments() {
        for (variant, v) in variants(&d) {
            for domain in [None, Some("wb.example.com")] {
                let inputs = K8sInputs {
                    namespace: v.prop("NAMESPACE"),
                    domain,
                    ingress_class: domain.and(Some("nginx")),
                    env_digest: "0123abcd",
                };
                let list = k8s::render(&v, &inputs)
                    .unwrap_or_else(|| panic!("{shown} renders no manifests"));
                let prefix = format!(
                    "{}-{variant}-{}",
                    shown.replace('/', "_"),
                    if domain.is_some() {
                        "domain"
                    } else {
                        "nodomain"
                    }
                );
                for f in unwrap_items(&list, dir.path(), &prefix) {
                    let kind = f.file_name().unwrap().to_str().unwrap();
                    kinds.insert(kind.rsplit('-').next().unwrap().to_string());
                    files.push(f);
                }
            }
        }
    }
    // Every kind the renderer makes was rendered at least once.
    let kinds: Vec<&str> = kinds.iter().map(String::as_str).collect();
    assert_eq!(
        kinds,
        [
            "deployment.json",
            "ingress.json",
            "persistentvolumeclaim.json",
            "poddisruptionbudget.json",
            "service.json"
        ]
    );
    for version in VERSIONS {
        let (ok, text) = validate(&tools, version, &files);
        assert!(
            ok,
            "kubernetes-validate --strict -k {version} failed:\n{text}"
        );
        let passed = text.lines().filter(|l| l.contains(" passed for ")).count();
        assert_eq!(passed, files.len(), "every document passes:\n{text}");
    }
}

/// The check can fail: an unknown field is an ERROR and an unknown kind a WARN, and
/// both fail here — so the test above proves something.
#[test]
fn the_strict_check_refuses_an_unknown_field_and_warns_on_an_unknown_kind() {
    let Some(tools) = wb_tests::k8s::tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"},"spec":{"bogus":1}}"#,
    )
    .unwrap();
    let unknown = dir.path().join("unknown.json");
    std::fs::write(&unknown, r#"{"apiVersion":"v1","kind":"List","items":[]}"#).unwrap();
    for version in VERSIONS {
        let (ok, text) = validate(&tools, version, std::slice::from_ref(&bad));
        assert!(!ok && text.contains("'bogus' was unexpected"), "{text}");
        // A whole List is not a schema'd kind: why the items are validated one by one.
        let (ok, text) = validate(&tools, version, std::slice::from_ref(&unknown));
        assert!(!ok && text.contains("WARN"), "{text}");
    }
}
