//! `recipe new` and `recipe check` (SPEC §15, §18): the stub reports every unwritten
//! hook; one deliberately broken recipe per finding, each producing exactly its one
//! finding; the Fly recipe (against the flyctl double) and the docs' acme example pass.

use wb_tests::{Sandbox, doubles_dir, repo_root};

/// A toy provider whose "platform" is a directory under $HOME; keeps the contract.
/// Each broken fixture below replaces one piece of it.
const GOOD: &str = r#"#!/usr/bin/env bash
# wb-requires: APP
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../_recipe.sh
source "$WB_PROVIDERS_DIR/_recipe.sh"
WB_RECIPE_PLACE=toy
APPDIR="$HOME/toy/${WB_APP_NAME:-}"
#EARLY#
provider_ensure_app() { mkdir -p "$APPDIR"; }
provider_set_secrets() {
  (umask 077 && wb_engine_dotenv >"$APPDIR/env")
  #SECRETS#
}
provider_attach_volume() { mkdir -p "$APPDIR/volume"; }
provider_deploy_image() { printf '%s\n' "$WB_IMAGE" >"$APPDIR/running"; }
provider_public_url() { printf 'https://%s.toy.example\n' "$WB_APP_NAME"; }
provider_down() {
  rm -f "$APPDIR/running"
  echo "kept: app $WB_APP_NAME and its volume"
}
provider_status() {
  local n=0 image=null
  if [[ ! -d $APPDIR ]]; then
    #ABSENT#
    echo 'state: {"present": false, "image": null, "instances": 0, "regions": []}'
    return 0
  fi
  if [[ -f $APPDIR/running ]]; then
    n=$(wc -l <"$APPDIR/running")
    image="\"$(head -n 1 "$APPDIR/running")\""
  fi
  echo "state: {\"present\": true, \"image\": $image, \"instances\": $n, \"regions\": []}"
}
provider_logs() {
  #LOGS#
  echo "no logs"
}
wb_recipe_run
"#;

/// Writes `recipes/<name>/bootstrap.sh` (with the spine) in the sandbox's work dir.
fn add(sb: &Sandbox, name: &str, text: &str) {
    let spine = std::fs::read_to_string(repo_root().join("recipes/_recipe.sh")).unwrap();
    sb.write("work/recipes/_recipe.sh", &spine);
    sb.write(&format!("work/recipes/{name}/bootstrap.sh"), text);
}

fn findings(run: &wb_tests::Run) -> Vec<(String, String)> {
    run.json()["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("findings in {}", run.stdout))
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_new_recipe_passes_shellcheck_and_check_names_every_unwritten_hook() {
    let sb = Sandbox::new();
    let run = sb.deploy(&["recipe", "new", "x", "--json"]);
    run.expect_code(0);
    let recipe = sb.work().join("recipes/x/bootstrap.sh");
    assert!(recipe.is_file() && sb.work().join("recipes/_recipe.sh").is_file());
    if wb_tests::require_tool("shellcheck") {
        let sc = std::process::Command::new("shellcheck")
            .arg("-x")
            .arg(&recipe)
            .output()
            .unwrap();
        assert!(
            sc.status.success(),
            "{}",
            String::from_utf8_lossy(&sc.stdout)
        );
    }
    // Never over an existing recipe without --force.
    let again = sb.deploy(&["recipe", "new", "x"]);
    again.expect_code(1);
    assert!(
        again.stderr.contains("already exists — pass --force"),
        "{}",
        again.stderr
    );
    sb.deploy(&["recipe", "new", "x", "--force"]).expect_code(0);

    let run = sb.deploy(&["recipe", "check", "x", "--json"]);
    run.expect_code(1);
    let found = findings(&run);
    let hooks = xtask::providers::check::HOOKS;
    assert_eq!(found.len(), hooks.len(), "{found:?}");
    for ((id, message), hook) in found.iter().zip(hooks) {
        assert_eq!(id, "missing-hook");
        assert_eq!(
            message,
            &format!("`{hook}` is not written yet (still the `recipe new` stub)")
        );
    }
}

#[test]
fn the_good_toy_recipe_has_no_findings() {
    let sb = Sandbox::new();
    add(&sb, "toy", GOOD);
    let run = sb.deploy(&["recipe", "check", "toy", "--json"]);
    assert_eq!(findings(&run), []);
    assert_eq!(run.json()["warnings"], serde_json::json!([]));
    run.expect_code(0);
    // An unknown directive is a warning naming it, never a finding.
    add(
        &sb,
        "toy",
        &GOOD.replace(
            "# wb-requires: APP\n",
            "# wb-requires: APP\n# wb-colour: red\n",
        ),
    );
    let run = sb.deploy(&["recipe", "check", "toy", "--json"]);
    assert_eq!(
        run.json()["warnings"],
        serde_json::json!(["the recipe's header has an unknown directive `wb-colour` — ignored"])
    );
    run.expect_code(0);
}

/// One broken fixture per finding: (id, placeholder, replacement).
const BROKEN: &[(&str, &str, &str)] = &[
    ("missing-hook", "provider_logs() {", "provider_lags() {"),
    (
        "unknown-action-exit",
        "#EARLY#",
        "case $WB_RECIPE_ACTION in up | secrets | down | status | logs | url) ;; *) exit 0 ;; esac",
    ),
    (
        "secret-in-argv",
        "#SECRETS#",
        "touch \"$APPDIR/bearer-$WB_PUBLIC_BEARER\"",
    ),
    (
        "secret-in-output",
        "#SECRETS#",
        "wb_say \"stored the bearer $WB_PUBLIC_BEARER\"",
    ),
    ("status-absent", "#ABSENT#", "return 0"),
    (
        "not-idempotent",
        "printf '%s\\n' \"$WB_IMAGE\" >\"$APPDIR/running\"",
        "printf '%s\\n' \"$WB_IMAGE\" >>\"$APPDIR/running\"",
    ),
    (
        "url-line",
        "#EARLY#",
        "if [[ $WB_RECIPE_ACTION == up ]]; then echo 'url: https://early.example'; fi",
    ),
    (
        "down-leaves-running",
        "rm -f \"$APPDIR/running\"",
        "echo 'destroyed: nothing'",
    ),
    ("timeout", "#LOGS#", "sleep 600"),
];

#[test]
fn each_broken_recipe_produces_its_one_finding() {
    let mut sb = Sandbox::new();
    sb.set("WB_RECIPE_CHECK_TIMEOUT", "5");
    for (id, from, to) in BROKEN {
        assert!(GOOD.contains(from), "{id}: {from}");
        let name = format!("broken-{id}");
        add(&sb, &name, &GOOD.replace(from, to));
        let run = sb.deploy(&["recipe", "check", &name, "--json"]);
        let found = findings(&run);
        let ids: Vec<&str> = found.iter().map(|(i, _)| i.as_str()).collect();
        assert_eq!(ids, [*id], "{name}: {found:?}\n{}", run.stderr);
        run.expect_code(1);
        assert!(
            !run.stdout.contains("cnry") && !run.stderr.contains("cnry"),
            "the check itself never shows a canary: {}",
            run.stderr
        );
    }
}

/// With `# wb-readonly:`, a second `up` that runs its CLI's `create` again is found,
/// even when the state it reports does not change.
#[test]
fn a_create_on_the_second_up_is_not_idempotent() {
    let sb = Sandbox::new();
    sb.write("doubles/toyctl", "#!/bin/sh\nexit 0\n");
    use std::os::unix::fs::PermissionsExt;
    let double = sb.path().join("doubles/toyctl");
    std::fs::set_permissions(&double, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = GOOD
        .replace(
            "# wb-requires: APP\n",
            "# wb-requires: APP\n# wb-cli: toyctl\n# wb-readonly: toyctl status|toyctl logs\n",
        )
        .replace(
            "provider_ensure_app() { mkdir -p \"$APPDIR\"; }",
            "provider_ensure_app() {\n  toyctl apps create \"$WB_APP_NAME\"\n  mkdir -p \"$APPDIR\"\n}",
        );
    add(&sb, "creator", &text);
    let doubles = sb.path().join("doubles").display().to_string();
    let run = sb.deploy(&[
        "recipe",
        "check",
        "creator",
        "--doubles",
        &doubles,
        "--json",
    ]);
    assert_eq!(
        findings(&run),
        [(
            "not-idempotent".to_string(),
            "the second `up` ran `toyctl apps create …` — up twice must create nothing the second time (look before you create)".to_string()
        )]
    );
    run.expect_code(1);
}

#[test]
fn the_fly_recipe_passes_against_the_flyctl_double() {
    if !wb_tests::require_tool("python3") {
        return;
    }
    let mut sb = Sandbox::new();
    sb.set("FLY_API_TOKEN", "fly-token-for-the-double");
    let doubles = doubles_dir().display().to_string();
    let run = sb.deploy(&["recipe", "check", "fly", "--doubles", &doubles, "--json"]);
    assert_eq!(findings(&run), [], "{}", run.stderr);
    run.expect_code(0);
    let ran = run.json()["ran"].as_array().unwrap().len();
    assert_eq!(ran, 12, "{}", run.stdout);
}

#[test]
fn a_cli_outside_the_doubles_is_refused_without_live() {
    let sb = Sandbox::new();
    let run = sb.deploy(&["recipe", "check", "fly"]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("the fly recipe runs flyctl|fly — pass `--doubles DIR`"),
        "{}",
        run.stderr
    );
    let run = sb.deploy(&["recipe", "check", "fly", "--doubles", "/tmp", "--live"]);
    run.expect_code(2);
}

#[test]
fn the_docs_acme_example_passes() {
    let doc = std::fs::read_to_string(repo_root().join("docs/cloud.md")).unwrap();
    let after = doc
        .split_once("<!-- test: acme/bootstrap.sh -->")
        .unwrap()
        .1;
    let body = after.split_once("```bash\n").unwrap().1;
    let example = body.split_once("\n```").unwrap().0.to_string() + "\n";
    let mut sb = Sandbox::new();
    sb.set("ACME_TOKEN", "acme-token");
    add(&sb, "acme", &example);
    let run = sb.deploy(&["recipe", "check", "acme", "--json"]);
    assert_eq!(findings(&run), [], "{}", run.stderr);
    run.expect_code(0);
}
