//! `apply` and friends on `deployments/cloud-saas.org` through the bundled-from-repo Fly
//! recipe and the flyctl double: convergence, idempotence you can count, failure codes,
//! the bearer's lifecycle, and canary secrets that must never surface.

mod cloud_support;

use cloud_support::*;
use wb_tests::{Run, Sandbox};

const FILE: &str = "cloud-saas.org";

/// Whether the kit's record says a release is applied (its newest release, SPEC §18).
fn applied(sb: &Sandbox) -> bool {
    xtask::state::last_applied(&sb.wb_home().join("cloud-saas")).is_some()
}

#[track_caller]
fn clean(sb: &Sandbox, run: &Run) {
    run.assert_no_canary(&canary_tokens());
    assert!(
        temp_entries(sb).is_empty(),
        "temp dirs left: {:?}",
        temp_entries(sb)
    );
}

#[test]
fn apply_converges_then_changes_nothing_then_converges_on_change() {
    if !double_ready() {
        return;
    }
    let mut sb = fly_sandbox(FILE);
    // The arc proves `down` keeps a volume, so the deployment keeps its files on one:
    // the shipped file with `STORAGE: local-fs` (its Postgres DSN still ships).
    with_local_files(&sb);

    // First apply: creates everything, generates the bearer, prints the URL.
    let first = sb.deploy(&["apply", FILE]);
    first.expect_code(0);
    clean(&sb, &first);
    assert!(
        first.stdout.contains("url: https://wb-saas.fly.dev"),
        "{}",
        first.stdout
    );
    assert!(
        first
            .stderr
            .contains("control-plane locked — export WB_ENGINE_TOKEN="),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("secrets generate WB_SIGNING_KEY"),
        "{}",
        first.stderr
    );
    let bearer = stored(&sb, "cloud-saas", "WB_PUBLIC_BEARER").expect("bearer stored");
    assert_eq!(bearer.len(), 64);
    assert!(bearer.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(
        first.stderr.contains(&bearer),
        "printed once, on the first apply"
    );
    assert_eq!(
        commands(&calls(&sb)),
        [
            "version",
            "status",
            "apps create",
            "secrets import",
            "volumes list",
            "volumes create",
            "deploy",
            // After `up`: the deployed image for the release (the `state:` line, from
            // the app check, `status` and `status --json`), read-only.
            "status",
            "status",
            "status"
        ]
    );
    assert!(applied(&sb));
    // The double received the bearer as a staged secret (by digest) — a cloud engine is
    // never deployed without it.
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sb.home().join(".fly-double/state.json")).unwrap(),
    )
    .unwrap();
    assert!(state["apps"]["wb-saas"]["secrets"]["WB_PUBLIC_BEARER"].is_object());

    // Unchanged: zero mutating calls, the bearer is not printed again.
    let before = calls(&sb).len();
    for _ in 0..3 {
        let again = sb.deploy(&["apply", FILE]);
        again.expect_code(0);
        clean(&sb, &again);
        assert!(again.stdout.contains("url: https://wb-saas.fly.dev"));
        assert!(again.stderr.contains("unchanged"), "{}", again.stderr);
        assert!(
            !again.stderr.contains(&bearer),
            "the bearer is printed only once"
        );
    }
    let after = calls(&sb);
    assert_eq!(mutating(&after[before..]), Vec::<String>::new());
    assert_eq!(
        stored(&sb, "cloud-saas", "WB_PUBLIC_BEARER").unwrap(),
        bearer,
        "never rotated"
    );

    // --json on an unchanged deployment: one object, no secrets, no bearer.
    let json = sb.deploy(&["apply", FILE, "--json"]);
    json.expect_code(0);
    clean(&sb, &json);
    let v = json.json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["changed"], false);
    assert_eq!(v["url"], "https://wb-saas.fly.dev");
    assert!(!json.stdout.contains(&bearer));

    // A secret's value changes → converge: secrets staged and a deploy.
    sb.set("STRIPE_API_KEY", "sk_live=cnry-stripe-Z9 rotated\nvalue");
    let before = calls(&sb).len();
    let changed = sb.deploy(&["apply", FILE, "--json"]);
    changed.expect_code(0);
    clean(&sb, &changed);
    let v = changed.json();
    assert_eq!(v["changed"], true);
    assert!(
        v["changes"]
            .to_string()
            .contains("env:STRIPE_API_KEY changed"),
        "{v}"
    );
    let new_calls = calls(&sb)[before..].to_vec();
    assert_eq!(mutating(&new_calls), ["secrets import", "deploy"]);

    // --force → up again although nothing changed.
    let before = calls(&sb).len();
    let forced = sb.deploy(&["apply", FILE, "--force"]);
    forced.expect_code(0);
    clean(&sb, &forced);
    assert!(commands(&calls(&sb)[before..]).contains(&"deploy".to_string()));

    // The bearer is still the first one.
    assert_eq!(
        stored(&sb, "cloud-saas", "WB_PUBLIC_BEARER").unwrap(),
        bearer
    );

    // Read-only verbs: no canary, no mutation.
    let before = calls(&sb).len();
    for verb in ["plan", "status", "logs", "url"] {
        for json in [false, true] {
            let mut args = vec![verb, FILE];
            if json {
                args.push("--json");
            }
            let run = sb.deploy(&args);
            run.expect_code(0);
            clean(&sb, &run);
            assert!(
                !run.stdout.contains(&bearer) && !run.stderr.contains(&bearer),
                "{verb}"
            );
        }
    }
    let list = sb.deploy(&["secrets", "list", FILE, "--json"]);
    list.expect_code(0);
    clean(&sb, &list);
    assert!(!list.stdout.contains(&bearer));
    assert_eq!(mutating(&calls(&sb)[before..]), Vec::<String>::new());
    let url = sb.deploy(&["url", FILE]);
    // `url` prints the bare URL, local and cloud alike, so `$(… url)` works.
    assert_eq!(url.stdout, "https://wb-saas.fly.dev\n");

    // Nothing but the store holds a canary: not the double's argv log or state, not
    // the kit's state.
    assert_no_canary_in_files(&sb.wb_home(), &["secrets.env"]);
    assert_no_canary_in_files(&sb.home(), &[]);
    let log = std::fs::read_to_string(sb.home().join(".fly-double/calls.log")).unwrap();
    assert!(!log.contains(&bearer));

    // down keeps the data: the machines go, the app, its volume (with the data on it)
    // and its secrets stay; the kit repeats what the recipe reports.
    let volume = fly_app(&sb)["volumes"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    mark_volume(&sb, "registry.db", "workbook-7");
    let before = calls(&sb).len();
    let down = sb.deploy(&["down", FILE]);
    down.expect_code(0);
    clean(&sb, &down);
    assert!(!applied(&sb));
    assert_eq!(
        stored(&sb, "cloud-saas", "WB_PUBLIC_BEARER").unwrap(),
        bearer
    );
    assert_eq!(mutating(&calls(&sb)[before..]), ["scale count"]);
    for line in [
        "  destroyed: the machines of app wb-saas".to_string(),
        "  kept: app wb-saas and its secrets".to_string(),
        format!("  kept: volume wbdata ({volume})"),
    ] {
        assert!(down.stderr.contains(&line), "{line}: {}", down.stderr);
    }
    let app = fly_app(&sb);
    assert_eq!(app["machines"].as_array().unwrap().len(), 0);
    assert!(app["secrets"]["WB_PUBLIC_BEARER"].is_object());

    // Applying after down converges again: a new machine on the same volume.
    let before = calls(&sb).len();
    let back = sb.deploy(&["apply", FILE]);
    back.expect_code(0);
    clean(&sb, &back);
    assert!(!back.stderr.contains("control-plane locked"));
    assert_eq!(
        stored(&sb, "cloud-saas", "WB_PUBLIC_BEARER").unwrap(),
        bearer
    );
    assert_eq!(
        mutating(&calls(&sb)[before..]),
        ["secrets import", "deploy"]
    );
    let app = fly_app(&sb);
    assert_eq!(app["volumes"].as_array().unwrap().len(), 1);
    assert_eq!(app["volumes"][0]["id"], volume.as_str());
    assert_eq!(app["volumes"][0]["x_data"]["registry.db"], "workbook-7");
    assert_eq!(
        app["volumes"][0]["attached_machine_id"],
        app["machines"][0]["id"]
    );

    // --purge needs --yes (usage error, nothing runs); with it the app goes.
    let before = calls(&sb).len();
    let refused = sb.deploy(&["down", FILE, "--purge"]);
    refused.expect_code(2);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert_eq!(calls(&sb).len(), before);
    let purge = sb.deploy(&["down", FILE, "--purge", "--yes", "--json"]);
    purge.expect_code(0);
    clean(&sb, &purge);
    let v = purge.json();
    assert_eq!(v["purge"], true);
    assert!(
        v["destroyed"][0]
            .as_str()
            .unwrap()
            .starts_with("app wb-saas"),
        "{v}"
    );
    assert_eq!(mutating(&calls(&sb)[before..]), ["apps destroy"]);
    assert!(fly_state(&sb)["apps"]["wb-saas"].is_null());
    // No flyctl call the recipe made in the whole arc was rejected: every one exited 0
    // but the first `status`, the probe that found no app yet.
    let all = calls(&sb);
    let failed: Vec<String> = all
        .iter()
        .filter(|c| c["exit"] != 0)
        .map(|c| format!("{} -> {}", c["argv"], c["exit"]))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].starts_with("[\"status\""), "{failed:?}");

    // The kit's store (and the bearer) stay even then.
    assert_eq!(
        stored(&sb, "cloud-saas", "WB_PUBLIC_BEARER").unwrap(),
        bearer
    );
}

/// The sandbox's cloud-saas with its files on the app's volume instead of S3.
fn with_local_files(sb: &Sandbox) {
    let path = sb.work().join(FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(":STORAGE: s3\n"));
    std::fs::write(
        &path,
        text.replace(":STORAGE: s3\n", ":STORAGE: local-fs\n"),
    )
    .unwrap();
}

#[test]
fn a_deployment_whose_data_lives_in_s3_and_postgres_gets_no_volume() {
    if !double_ready() {
        return;
    }
    let sb = fly_sandbox(FILE);
    let plan = sb.deploy(&["plan", FILE, "--json"]).json();
    assert!(!plan["fly_toml"].as_str().unwrap().contains("[mounts]"));
    sb.deploy(&["apply", FILE]).expect_code(0);
    assert_eq!(fly_app(&sb)["volumes"].as_array().unwrap().len(), 0);
    assert!(!mutating(&calls(&sb)).contains(&"volumes create".to_string()));
}

fn fly_state(sb: &Sandbox) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(sb.home().join(".fly-double/state.json")).unwrap(),
    )
    .unwrap()
}

fn fly_app(sb: &Sandbox) -> serde_json::Value {
    fly_state(sb)["apps"]["wb-saas"].clone()
}

/// A marker in the first volume's state: the double's stand-in for workbook bytes.
fn mark_volume(sb: &Sandbox, key: &str, value: &str) {
    let mut state = fly_state(sb);
    state["apps"]["wb-saas"]["volumes"][0]["x_data"][key] = serde_json::Value::String(value.into());
    std::fs::write(
        sb.home().join(".fly-double/state.json"),
        serde_json::to_string_pretty(&state).unwrap(),
    )
    .unwrap();
}

#[test]
fn a_failing_step_passes_its_code_through_and_records_nothing() {
    if !double_ready() {
        return;
    }
    let sb = fly_sandbox(FILE);
    std::fs::create_dir_all(sb.home().join(".fly-double")).unwrap();
    std::fs::write(sb.home().join(".fly-double/fail"), "deploy 3\n").unwrap();
    let run = sb.deploy(&["apply", FILE]);
    run.expect_code(3);
    clean(&sb, &run);
    assert!(
        run.stderr.contains("provider_deploy_image failed"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("nothing was recorded"),
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains("url:"));
    assert!(!applied(&sb), "no last-applied record after a failure");

    // The next apply converges (the deploy step runs again) and records.
    let retry = sb.deploy(&["apply", FILE, "--json"]);
    retry.expect_code(0);
    assert_eq!(retry.json()["changed"], true);
    assert!(applied(&sb));

    // A failure on an already-applied deployment also drops the stale record.
    std::fs::write(sb.home().join(".fly-double/fail"), "deploy 4\n").unwrap();
    let forced = sb.deploy(&["apply", FILE, "--force", "--json"]);
    forced.expect_code(4);
    assert_eq!(forced.json()["ok"], false);
    assert!(!applied(&sb));
}

#[test]
fn an_app_destroyed_behind_the_kits_back_is_recreated() {
    if !double_ready() {
        return;
    }
    let sb = fly_sandbox(FILE);
    sb.deploy(&["apply", FILE]).expect_code(0);
    // Someone destroys the app with flyctl directly.
    let out = std::process::Command::new(wb_tests::doubles_dir().join("fly"))
        .args(["apps", "destroy", "wb-saas", "--yes"])
        .env_clear()
        .env("PATH", double_path())
        .env("HOME", sb.home())
        .env("FLY_API_TOKEN", "t")
        .output()
        .unwrap();
    assert!(out.status.success());
    let run = sb.deploy(&["apply", FILE]);
    run.expect_code(0);
    assert!(run.stderr.contains("converging"), "{}", run.stderr);
    assert!(
        commands(&calls(&sb))
            .iter()
            .filter(|c| *c == "apps create")
            .count()
            == 2
    );
}

#[test]
fn apply_refuses_an_unset_declared_secret_and_says_how_to_set_it() {
    if !double_ready() {
        return;
    }
    let mut sb = fly_sandbox(FILE);
    sb.unset("STRIPE_API_KEY");
    let run = sb.deploy(&["apply", FILE]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("secret `STRIPE_API_KEY` is declared but has no value")
            && run.stderr.contains("secrets set STRIPE_API_KEY"),
        "{}",
        run.stderr
    );
    assert!(calls(&sb).is_empty(), "no provider call");
    assert!(
        !sb.wb_home().join("cloud-saas/secrets.env").exists(),
        "no bearer made"
    );
}

/// An unset secret blocks `apply` — never `status` or `down`: a teardown must not
/// depend on credentials the engine no longer needs.
#[test]
fn status_and_down_work_with_a_declared_secret_unset() {
    if !double_ready() {
        return;
    }
    let mut sb = fly_sandbox(FILE);
    sb.deploy(&["apply", FILE]).expect_code(0);
    sb.unset("STRIPE_API_KEY")
        .unset("WB_S3_KEY")
        .unset("WB_DATABASE_URL");
    sb.deploy(&["status", FILE]).expect_code(0);
    let run = sb.deploy(&["down", FILE]);
    run.expect_code(0);
    assert!(
        run.stderr.contains("down — cloud-saas at fly"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("  kept: app wb-saas and its secrets"),
        "{}",
        run.stderr
    );
    assert_eq!(
        mutating(&calls(&sb)).last().map(String::as_str),
        Some("scale count")
    );
    sb.deploy(&["apply", FILE]).expect_code(1);
}

#[test]
fn a_stored_signing_key_silences_the_warning_and_the_store_wins() {
    if !double_ready() {
        return;
    }
    let sb = fly_sandbox(FILE);
    sb.deploy(&["secrets", "generate", "WB_SIGNING_KEY", FILE])
        .expect_code(0);
    let run = sb.deploy(&["apply", FILE]);
    run.expect_code(0);
    assert!(
        !run.stderr.contains("WB_SIGNING_KEY is unset"),
        "{}",
        run.stderr
    );
    let state = std::fs::read_to_string(sb.home().join(".fly-double/state.json")).unwrap();
    assert!(state.contains("WB_SIGNING_KEY"));
}

#[test]
fn without_flyctl_the_recipe_points_at_the_installer() {
    let mut sb = fly_sandbox(FILE);
    sb.set("PATH", "/usr/bin:/bin");
    if std::path::Path::new("/usr/bin/flyctl").exists()
        || std::path::Path::new("/usr/bin/fly").exists()
    {
        let why = "a real flyctl is installed in /usr/bin, so no PATH without one can be made";
        assert!(
            std::env::var("WB_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "WB_REQUIRE_TOOLS=1 and {why}"
        );
        eprintln!("SKIPPED: {why}");
        return;
    }
    let run = sb.deploy(&["apply", FILE]);
    run.expect_code(1);
    // The kit checks the recipe's `# wb-cli:` tools before it makes the bearer
    // (SPEC §13.3): nothing is generated, stored or shown for an apply that cannot run.
    assert!(
        run.stderr.contains("needs `flyctl` or `fly` on PATH"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("control-plane locked"),
        "{}",
        run.stderr
    );
    assert!(stored(&sb, "cloud-saas", "WB_PUBLIC_BEARER").is_none());
    assert!(!applied(&sb));
    clean(&sb, &run);
    // The recipe itself still points at the installer when run without the kit's check.
    let run = sb.deploy(&["status", FILE]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("https://fly.io/docs/flyctl/install/"),
        "{}",
        run.stderr
    );
}

#[test]
fn verify_sends_the_bearer_and_reports_the_health_status() {
    if !double_ready() || !wb_tests::require_tool("curl") {
        return;
    }
    let mut sb = fly_sandbox(FILE);
    // Before any apply there is no bearer to verify with.
    let early = sb.deploy(&["verify", FILE]);
    early.expect_code(1);
    assert!(
        early.stderr.contains("run `cargo xtask deploy apply"),
        "{}",
        early.stderr
    );

    sb.deploy(&["apply", FILE]).expect_code(0);
    let bearer = stored(&sb, "cloud-saas", "WB_PUBLIC_BEARER").unwrap();
    let server = HealthServer::start(bearer.clone());
    sb.set("WB_VERIFY_URL", format!("{}/", server.base));
    let ok = sb.deploy(&["verify", FILE, "--json"]);
    ok.expect_code(0);
    clean(&sb, &ok);
    assert!(!ok.stdout.contains(&bearer) && !ok.stderr.contains(&bearer));
    let v = ok.json();
    assert_eq!(v["status"], 200);
    assert_eq!(v["health"], format!("{}/health", server.base));
    assert_eq!(
        server.seen.lock().unwrap().last().unwrap(),
        &("GET /health HTTP/1.1".to_string(), true)
    );

    // A server expecting another bearer answers 401: verify fails and says why.
    let other = HealthServer::start("not-the-bearer".into());
    sb.set("WB_VERIFY_URL", other.base.clone());
    let refused = sb.deploy(&["verify", FILE]);
    refused.expect_code(1);
    assert!(
        refused.stderr.contains("answered 401"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains(&bearer));
}

/// The app-build path: the kit renders fly.toml without `[build] image`, so flyctl builds
/// the Dockerfile (deploy_build.go fetchImageRef: --image, then [build] image, and only
/// then a build) instead of silently deploying the prebuilt image.
#[test]
fn the_dockerfile_path_builds_instead_of_deploying_the_prebuilt_image() {
    if !double_ready() {
        return;
    }
    let mut sb = fly_sandbox(FILE);
    let dockerfile = sb.write("work/src/Dockerfile", "FROM scratch\n");
    sb.set("WB_FLY_DOCKERFILE", dockerfile.display().to_string());
    let run = sb.deploy(&["apply", FILE]);
    run.expect_code(0);
    clean(&sb, &run);
    let deploy = calls(&sb)
        .into_iter()
        .find(|c| c["command"] == "deploy")
        .expect("a deploy call");
    let argv: Vec<&str> = deploy["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(argv.contains(&"--dockerfile"), "{argv:?}");
    assert!(!argv.contains(&"--image"), "{argv:?}");
    let release = &fly_app(&sb)["releases"][0];
    assert!(
        release["image"]
            .as_str()
            .unwrap()
            .starts_with("registry.fly.io/wb-saas:deployment-"),
        "{release}"
    );
    assert!(release["config"]["build"].is_null(), "{release}");
}
