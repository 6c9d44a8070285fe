//! Recipe contract v2, kit side (SPEC §13.1, §18): `# wb-properties:` keys are legal
//! drawer keys, typed and validated at their line, passed as `WB_PROP_<KEY>` and part of
//! the fingerprint; `# wb-requires:` (REGION only when a recipe says so);
//! `# wb-supports:` refuses a non-default value of an unsupported optional key.

use xtask::core::contract::{Contract, PropType};
use xtask::core::secret::DeployEnv;
use xtask::load::{FileText, Inputs, check_file};

use wb_tests::Sandbox;

fn check(text: &str, contract: &Contract) -> xtask::core::validate::Checked {
    let read = FileText {
        text: Some(text.to_string()),
        diagnostics: Vec::new(),
    };
    let env = DeployEnv::default();
    let recipe_for = |p: &str| {
        if p == "toy" {
            Ok(contract.clone())
        } else {
            Err(format!("no recipe `{p}`"))
        }
    };
    let inputs = Inputs {
        shown: "d.org",
        stem: "d",
        id: None,
        program: "wb-deploy",
        deploy_env: &env,
        recipe_for: &recipe_for,
        require_secrets: false,
    };
    check_file(&read, &inputs).1
}

fn errors(checked: &xtask::core::validate::Checked) -> Vec<String> {
    checked
        .errors()
        .map(|d| format!("{}: {}", d.line.unwrap_or(0), d.message))
        .collect()
}

fn toy() -> Contract {
    Contract {
        properties: vec![
            ("HOST".into(), PropType::SshTarget),
            ("DOMAIN".into(), PropType::Hostname),
        ],
        requires: vec!["APP".into(), "HOST".into()],
        supports: vec!["SIZE".into()],
    }
}

const HEAD: &str =
    "* d :deployment:\n:PROPERTIES:\n:ENGINE_PLACE: cloud\n:PROVIDER: toy\n:APP: wb-toy\n";

#[test]
fn properties_are_legal_keys_typed_at_their_line() {
    let ok = check(
        &format!("{HEAD}:HOST: deploy@box.example:2222\n:DOMAIN: wb.example.com\n:END:\n"),
        &toy(),
    );
    assert_eq!(errors(&ok), Vec::<String>::new());
    assert_eq!(
        ok.warnings().count(),
        0,
        "a declared property is not an unknown key"
    );
    let d = ok.deployment.unwrap();
    assert_eq!(
        d.properties,
        [
            ("HOST".to_string(), "deploy@box.example:2222".to_string()),
            ("DOMAIN".to_string(), "wb.example.com".to_string())
        ]
    );

    let bad = check(&format!("{HEAD}:HOST: box.example\n:END:\n"), &toy());
    assert_eq!(
        errors(&bad),
        [
            "6: HOST `box.example` is not an ssh target `user@host[:port]` — a `toy` provider property of type ssh-target"
        ]
    );
}

#[test]
fn requires_names_kit_and_provider_keys_and_region_only_when_asked() {
    let missing = check(&format!("{HEAD}:END:\n"), &toy());
    assert_eq!(
        errors(&missing),
        [
            "3: PROVIDER: toy needs HOST — its recipe requires it (`# wb-requires:`); set `:HOST:` in the drawer"
        ]
    );
    let mut with_region = toy();
    with_region.requires.push("REGION".into());
    let missing = check(&format!("{HEAD}:HOST: a@b\n:END:\n"), &with_region);
    assert_eq!(
        errors(&missing),
        ["3: ENGINE_PLACE: cloud needs REGION — the provider region to run in (e.g. `iad`)"]
    );
}

#[test]
fn an_unsupported_optional_key_is_refused_unless_it_holds_its_default() {
    for (line, refused) in [
        (":STRATEGY: canary\n", true),
        (":STRATEGY: rolling\n", false),
        (":SIZE: t3\n", false),
    ] {
        let checked = check(&format!("{HEAD}:HOST: a@b\n{line}:END:\n"), &toy());
        let refusals: Vec<String> = errors(&checked)
            .into_iter()
            .filter(|e| e.contains("does not support"))
            .collect();
        assert_eq!(!refusals.is_empty(), refused, "{line}: {refusals:?}");
    }
    let checked = check(
        &format!("{HEAD}:HOST: a@b\n:STRATEGY: canary\n:END:\n"),
        &toy(),
    );
    assert!(
        errors(&checked).contains(
            &"7: STRATEGY: canary — the `toy` recipe does not support STRATEGY (its `# wb-supports:` line does not name it); remove the line or set STRATEGY: rolling".to_string()
        ),
        "{:?}",
        errors(&checked)
    );
}

/// A recipe that records its env: properties arrive as WB_PROP_<KEY>, and changing one
/// is a change for `apply`.
#[test]
fn a_property_reaches_the_recipe_and_changing_it_is_a_change() {
    let mut sb = Sandbox::new();
    let spine = std::fs::read_to_string(wb_tests::repo_root().join("recipes/_recipe.sh")).unwrap();
    sb.write("providers/_recipe.sh", &spine);
    sb.write(
        "providers/toy/bootstrap.sh",
        r#"#!/usr/bin/env bash
# wb-properties: DOMAIN:hostname
# wb-requires: APP
set -euo pipefail
source "$WB_PROVIDERS_DIR/_recipe.sh"
WB_RECIPE_PLACE=toy
provider_ensure_app() { mkdir -p "$HOME/toy"; }
provider_set_secrets() { echo "$WB_RECIPE_ACTION" >>"$HOME/toy/staged"; }
provider_attach_volume() { :; }
provider_deploy_image() {
  printf '%s %s %s\n' "$WB_PROP_DOMAIN" "$WB_DEPLOYMENT_ID" "${#WB_ENV_DIGEST}" >>"$HOME/toy/ups"
}
provider_public_url() { printf 'https://%s\n' "$WB_PROP_DOMAIN"; }
provider_down() { :; }
provider_status() {
  if [[ -f $HOME/toy/status-fails ]]; then echo "not logged in" >&2; return 3; fi
  if [[ ! -f $HOME/toy/ups ]]; then
    echo 'state: {"present": false, "image": null, "instances": 0, "regions": []}'
  else
    echo 'state: {"present": true, "image": null, "instances": 1, "regions": []}'
  fi
}
provider_logs() { :; }
wb_recipe_run
"#,
    );
    sb.set(
        "WB_PROVIDERS_DIR",
        sb.path().join("providers").display().to_string(),
    );
    let org = |domain: &str| {
        format!(
            "* d :deployment:\n:PROPERTIES:\n:ID: toy\n:ENGINE_PLACE: cloud\n:PROVIDER: toy\n:APP: wb-toy\n:DOMAIN: {domain}\n:END:\n"
        )
    };
    let file = sb
        .write("work/toy.org", &org("a.example"))
        .display()
        .to_string();
    sb.deploy(&["apply", &file]).expect_code(0);
    let again = sb.deploy(&["apply", &file]);
    again.expect_code(0);
    assert!(again.stderr.contains("unchanged"), "{}", again.stderr);
    sb.write("work/toy.org", &org("b.example"));
    let changed = sb.deploy(&["apply", &file]);
    changed.expect_code(0);
    assert_eq!(changed.stdout, "url: https://b.example\n");
    assert!(
        changed.stderr.contains("property:DOMAIN"),
        "{}",
        changed.stderr
    );
    let ups = std::fs::read_to_string(sb.home().join("toy/ups")).unwrap();
    assert_eq!(ups, "a.example toy 64\nb.example toy 64\n");

    // `secrets stage` runs the recipe's `secrets` action: ensure_app + set_secrets only.
    let stage = sb.deploy(&["secrets", "stage", &file, "--json"]);
    stage.expect_code(0);
    assert_eq!(stage.json()["verb"], "secrets");
    let staged = std::fs::read_to_string(sb.home().join("toy/staged")).unwrap();
    assert_eq!(staged, "up\nup\nsecrets\n");
    assert_eq!(
        std::fs::read_to_string(sb.home().join("toy/ups")).unwrap(),
        ups,
        "staging deploys nothing"
    );

    // A failing `status` could not tell: apply fails with its code and changes nothing.
    std::fs::write(sb.home().join("toy/status-fails"), "").unwrap();
    let failed = sb.deploy(&["apply", &file]);
    failed.expect_code(3);
    assert!(
        failed.stderr.contains(
            "the toy recipe's `status` failed (exit 3) — it could not tell whether the app exists"
        ),
        "{}",
        failed.stderr
    );
    std::fs::remove_file(sb.home().join("toy/status-fails")).unwrap();
    // `status` reporting the app absent makes an unchanged deployment converge.
    std::fs::remove_file(sb.home().join("toy/ups")).unwrap();
    let converged = sb.deploy(&["apply", &file]);
    converged.expect_code(0);
    assert!(
        converged
            .stderr
            .contains("reports the app absent; converging"),
        "{}",
        converged.stderr
    );
    assert_eq!(
        std::fs::read_to_string(sb.home().join("toy/ups")).unwrap(),
        "b.example toy 64\n"
    );
}
