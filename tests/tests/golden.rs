//! Golden files: for every shipped deployment and every fixture, one readable snapshot
//! of the input and everything the kit renders from it — the validate report as a human
//! sees it, the engine env (secrets redacted) and fly.toml.
//!
//! A fixture's deploy env comes from `<name>.ctx` beside it; its secret values are
//! canaries, and no snapshot may contain one. CI runs with `INSTA_UPDATE=no`: a changed
//! or missing snapshot fails. `snapshots_are_all_referenced` rejects orphans.

use std::path::Path;

use xtask::core::diagnostic::render_report;
use xtask::core::engine_env::engine_env;
use xtask::core::render::{fly_toml, k8s};
use xtask::core::secret::DeployEnv;

/// What a fixture's `.ctx` file sets up.
struct Context {
    env: Vec<(String, String)>,
    id: Option<String>,
    providers: Vec<String>,
}

fn context(path: &Path) -> Context {
    let mut cx = Context {
        env: Vec::new(),
        id: None,
        providers: vec!["fly".into()],
    };
    let Ok(text) = std::fs::read_to_string(path.with_extension("ctx")) else {
        return cx;
    };
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (word, rest) = line.split_once(' ').expect("a ctx line is `word rest`");
        match word {
            "env" => {
                let (name, value) = rest.split_once('=').expect("env NAME=VALUE");
                cx.env.push((name.into(), value.into()));
            }
            "id" => cx.id = Some(rest.into()),
            "providers" => cx.providers = rest.split_whitespace().map(String::from).collect(),
            other => panic!("unknown ctx word {other:?} in {}", path.display()),
        }
    }
    cx
}

/// The deploy env the shipped deployments are rendered with: every credential set, so
/// the snapshot shows the full engine env — with canary values that must not appear.
fn shipped_context() -> Context {
    let env = [
        ("WB_S3_KEY", "canary-s3-key-0c1d"),
        ("WB_S3_SECRET", "canary-s3-secret-e2f3"),
        ("WB_DATABASE_URL", "postgres://u:canary-dsn-55aa@db/wb"),
        ("STRIPE_API_KEY", "canary-stripe-9f2c"),
        ("WB_PUBLIC_BEARER", "canary-bearer-abcd"),
        ("WB_SIGNING_KEY", "canary-signing-ef01"),
    ];
    Context {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        id: None,
        providers: vec!["fly".into(), "k8s".into()],
    }
}

/// Everything the kit renders for one file, as one text.
fn render(shown: &str, path: &Path, cx: &Context) -> String {
    let read = xtask::load::read_file(path, "cargo xtask deploy");
    let text = read.text.clone().unwrap_or_default();
    let deploy_env = DeployEnv::new(cx.env.clone(), std::iter::empty());
    let stem = path.file_stem().unwrap().to_str().unwrap();
    let providers: Vec<&str> = cx.providers.iter().map(String::as_str).collect();
    let (_, checked) = wb_tests::check_read(
        shown,
        stem,
        &read,
        cx.id.as_deref(),
        &deploy_env,
        &providers,
    );

    let mut out = String::new();
    out.push_str("--- input\n");
    out.push_str(
        &String::from_utf8_lossy(&std::fs::read(path).unwrap())
            .replace('\r', "\\r")
            .replace('\0', "\\0"),
    );
    if !out.ends_with('\n') {
        out.push('\n');
    }
    if !cx.env.is_empty() || cx.id.is_some() {
        out.push_str("--- context\n");
        for (name, _) in &cx.env {
            out.push_str(&format!("env {name}=<canary>\n"));
        }
        if let Some(id) = &cx.id {
            out.push_str(&format!("--id {id}\n"));
        }
    }
    out.push_str(&format!(
        "--- validate (exit {})\n",
        if checked.valid() { 0 } else { 1 }
    ));
    out.push_str(&render_report(
        shown,
        Some(&text),
        &checked.diagnostics,
        false,
    ));
    if let Some(d) = &checked.deployment {
        out.push_str(&format!("valid — {}\n", d.summary()));
        out.push_str("--- engine env\n");
        out.push_str(&engine_env(d, &deploy_env).render());
        if d.provider == "k8s" {
            if let Some(list) = k8s::render(d, &k8s::K8sInputs::of(d)) {
                out.push_str("--- k8s-manifests\n");
                out.push_str(&list);
            }
        } else if let Some(toml) = fly_toml::render(d, false) {
            out.push_str("--- fly.toml\n");
            out.push_str(&toml);
        }
    }
    for (name, value) in &cx.env {
        assert!(
            !out.contains(value.as_str()),
            "the canary value of {name} leaked into the rendering of {shown}:\n{out}"
        );
    }
    out
}

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("../snapshots");
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    s
}

#[test]
fn fixtures() {
    settings().bind(|| {
        insta::glob!("../fixtures", "*.org", |path| {
            let name = path.file_name().unwrap().to_str().unwrap();
            let shown = format!("fixtures/{name}");
            insta::assert_snapshot!(render(&shown, path, &context(path)));
        });
    });
}

#[test]
fn shipped_deployments() {
    settings().bind(|| {
        insta::glob!("../../deployments", "*.org", |path| {
            let name = path.file_name().unwrap().to_str().unwrap();
            let shown = format!("deployments/{name}");
            insta::assert_snapshot!(render(&shown, path, &shipped_context()));
        });
    });
}

/// Every snapshot belongs to a fixture or a shipped deployment that still exists.
#[test]
fn snapshots_are_all_referenced() {
    let root = wb_tests::repo_root();
    let dir = root.join("tests/snapshots");
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = entry.file_name().into_string().unwrap();
        if !name.ends_with(".snap") {
            continue;
        }
        let input = name
            .rsplit_once('@')
            .map(|(_, f)| f.trim_end_matches(".snap"))
            .unwrap_or("");
        let exists = root.join("tests/fixtures").join(input).is_file()
            || root.join("deployments").join(input).is_file();
        assert!(
            exists,
            "snapshot {name} has no input — delete it (tests/snapshots/{name})"
        );
    }
}

/// Each shipped deployment validates with the credentials it needs.
#[test]
fn shipped_deployments_are_valid() {
    for entry in std::fs::read_dir(wb_tests::repo_root().join("deployments"))
        .unwrap()
        .flatten()
    {
        let path = entry.path();
        let out = render("x", &path, &shipped_context());
        assert!(
            out.contains("--- validate (exit 0)"),
            "{} does not validate:\n{out}",
            path.display()
        );
    }
}
