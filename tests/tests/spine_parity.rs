//! The engine env has two implementations — `xtask::engine_env::engine_env` (Rust) and
//! `wb_base_env` in `recipes/_recipe.sh` (bash) — and they must agree. For each case the
//! test builds the exact sealed environment the kit would pass a recipe
//! (`xtask::providers::sealed::sealed_env`), sources the spine in bash with only that environment,
//! calls `wb_base_env`, and compares `WB_ENGINE_ENV` with the Rust engine env: the same
//! names (order aside) with byte-identical values.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;

use proptest::prelude::*;
use xtask::core::engine_env::engine_env;
use xtask::core::render::Artifact;
use xtask::core::secret::{DeployEnv, Secret};
use xtask::edge::Vars;
use xtask::providers::sealed::{Action, RecipeRun, SealedEnv, sealed_env};

fn deployment(text: &str, stem: &str, env: &DeployEnv) -> xtask::core::deployment::Deployment {
    let (_, checked) = wb_tests::check_text(stem, stem, Some(text), None, env, &["fly"]);
    checked
        .deployment
        .unwrap_or_else(|| panic!("{stem} is valid: {:?}", checked.diagnostics))
}

/// Sources the spine with exactly the kit's sealed env and returns `WB_ENGINE_ENV`.
fn spine_engine_env(env: SealedEnv) -> Result<Vec<(String, String)>, String> {
    let out = env
        .into_command("bash")
        .arg("-c")
        .arg(r#"source "$WB_PROVIDERS_DIR/_recipe.sh"; wb_base_env; printf '%s\0' "${WB_ENGINE_ENV[@]}""#)
        .stdin(Stdio::null())
        .output()
        .expect("bash runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(out
        .stdout
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let text = String::from_utf8(e.to_vec()).unwrap();
            let (n, v) = text.split_once('=').unwrap();
            (n.to_string(), v.to_string())
        })
        .collect())
}

/// Asserts the spine and the kit agree for one deployment text and deploy env.
fn assert_parity(text: &str, stem: &str, vars: &[(&str, &str)], stored: &[(&str, &str)]) {
    let env = DeployEnv::new(
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        stored.iter().map(|(k, v)| (k.to_string(), Secret::new(*v))),
    );
    let d = deployment(text, stem, &env);
    let rust = engine_env(&d, &env);
    let root = wb_tests::repo_root().join("recipes");
    let artifacts = [(Artifact::FlyToml, PathBuf::from("/nonexistent/fly.toml"))];
    let run = RecipeRun {
        action: Action::Up,
        providers_dir: &root,
        artifacts: &artifacts,
        passthrough: &[],
        purge: false,
        env_digest: "",
    };
    let caller = Vars::new([
        ("PATH".into(), "/usr/bin:/bin".into()),
        ("HOME".into(), "/nonexistent-home".into()),
    ]);
    let sealed = sealed_env(&d, &rust, &run, &caller).expect("a sealed env");
    let spine =
        spine_engine_env(sealed).unwrap_or_else(|e| panic!("{stem}: the spine refused:\n{e}"));
    let rust: BTreeMap<String, String> = rust
        .0
        .iter()
        .map(|(n, v)| (n.clone(), v.expose().to_string()))
        .collect();
    let spine_map: BTreeMap<String, String> = spine.iter().cloned().collect();
    assert_eq!(
        spine.len(),
        spine_map.len(),
        "{stem}: the spine repeats a name"
    );
    assert_eq!(
        rust.keys().collect::<Vec<_>>(),
        spine_map.keys().collect::<Vec<_>>(),
        "{stem}: names differ"
    );
    for (name, value) in &rust {
        assert_eq!(&spine_map[name], value, "{stem}: {name} differs");
    }
}

fn shipped(name: &str) -> String {
    std::fs::read_to_string(wb_tests::repo_root().join("deployments").join(name)).unwrap()
}

const TRICKY: &str = "a=b \"double\" 'single' $HOME `cmd` $(x) \\back * ? ~ ; & | < > # é 😀";

#[test]
fn shipped_local_deployments_agree() {
    assert_parity(&shipped("local.org"), "local", &[], &[]);
    assert_parity(&shipped("local-oidc.org"), "local-oidc", &[], &[]);
}

#[test]
fn shipped_cloud_single_agrees_with_and_without_the_bearer() {
    let text = shipped("cloud-single.org");
    assert_parity(&text, "cloud-single", &[], &[]);
    assert_parity(
        &text,
        "cloud-single",
        &[("WB_SIGNING_KEY", "00ff")],
        &[("WB_PUBLIC_BEARER", "abc123")],
    );
}

#[test]
fn shipped_cloud_saas_with_awkward_secrets_agrees() {
    let text = shipped("cloud-saas.org");
    assert_parity(
        &text,
        "cloud-saas",
        &[
            ("WB_S3_KEY", TRICKY),
            ("WB_S3_SECRET", "line one\nline \"two\"\n  three = 3"),
            (
                "WB_DATABASE_URL",
                "postgres://u:p@h/db?sslmode=require&x=a b",
            ),
            ("STRIPE_API_KEY", "  leading and trailing  "),
            ("UNRELATED", "never in the engine env"),
        ],
        &[("WB_PUBLIC_BEARER", "f00d"), ("WB_SIGNING_KEY", "beef")],
    );
}

#[test]
fn declared_secrets_that_repeat_engine_names_agree() {
    // Declaring a credential the axes already bring must not duplicate it, and one the
    // axes do not bring joins once.
    let text = "* t :deployment:\n:PROPERTIES:\n:ID: t\n:ENGINE_PLACE: cloud\n:APP: wb-t\n:REGION: iad\n:STORAGE: local-fs\n:END:\n#+DEPLOY_SECRETS: WB_PUBLIC_BEARER WB_S3_KEY OTHER_KEY\n";
    assert_parity(
        text,
        "t",
        &[
            ("WB_S3_KEY", "k"),
            ("OTHER_KEY", "o"),
            ("WB_PUBLIC_BEARER", "b"),
        ],
        &[],
    );
}

#[test]
fn every_optional_property_agrees() {
    let text = "* all :deployment:\n:PROPERTIES:\n:ID: all\n:ENGINE_PLACE: cloud\n:APP: wb-all\n:REGION: fra\n:PORT: 8123\n:IMAGE: ghcr.io/o/e:1\n:TENANCY_MODE: multi\n:STORAGE: s3\n:STORAGE_ENDPOINT: https://s3.example\n:STORAGE_BUCKET: b\n:STORAGE_REGION: eu\n:DATABASE: postgres\n:AUTH: betterauth\n:ISSUER: https://auth.example/\n:PROFILE: /profiles/x\n:END:\n";
    assert_parity(
        text,
        "all",
        &[
            ("WB_S3_KEY", "k"),
            ("WB_S3_SECRET", "s"),
            ("WB_DATABASE_URL", "postgres://x"),
        ],
        &[],
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any value the spine can hand to flyctl (no `"`-edge cases, no CR) agrees exactly.
    #[test]
    fn arbitrary_secret_values_agree(
        a in "[ -!#-~]{1,40}",
        b in "[ -!#-~é]{1,20}(\n[ -!#-~]{0,20}){0,3}",
    ) {
        let text = "* p :deployment:\n:PROPERTIES:\n:ID: p\n:ENGINE_PLACE: cloud\n:APP: wb-p\n:REGION: iad\n:END:\n#+DEPLOY_SECRETS: PROP_A PROP_B\n";
        assert_parity(text, "p", &[("PROP_A", &a), ("PROP_B", &b)], &[("WB_PUBLIC_BEARER", "x")]);
    }
}
