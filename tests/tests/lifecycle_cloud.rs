//! Releases, rollback, drift and previews in the cloud (SPEC §14), end to end through
//! the Fly recipe and the flyctl double (transcribed from flyctl's source).

mod cloud_support;

use cloud_support::*;
use serde_json::Value;
use wb_tests::{Run, Sandbox};

const FILE: &str = "cloud-single.org";
const APP: &str = "wb-team-engine";
const V1: &str = "ghcr.io/workbooks-sh/runtime:1.0";
const V2: &str = "ghcr.io/workbooks-sh/runtime:2.0";

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("../snapshots/json");
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    s
}

/// Writes the deployment file with `IMAGE: image`.
fn with_image(sb: &Sandbox, image: &str) {
    let path = sb.work().join(FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(":IMAGE:"))
        .map(str::to_string)
        .collect();
    let at = out
        .iter()
        .position(|l| l.starts_with(":PROVIDER:"))
        .unwrap();
    out.insert(at + 1, format!(":IMAGE: {image}"));
    std::fs::write(&path, out.join("\n") + "\n").unwrap();
}

fn fly_state(sb: &Sandbox) -> Value {
    let text = std::fs::read_to_string(sb.home().join(".fly-double/state.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The image the double's newest release of `app` deployed (what `fly status` reports).
fn deployed_image(sb: &Sandbox, app: &str) -> String {
    let state = fly_state(sb);
    let releases = state["apps"][app]["releases"].as_array().unwrap();
    releases.last().unwrap()["image"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A `--json` object with what varies by run replaced: times, salted digests, paths.
fn normalized(sb: &Sandbox, run: &Run) -> String {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if (k == "time" || k == "last_apply") && v.is_string() {
                        *v = Value::String("<time>".into());
                    } else if let Value::String(s) = v
                        && s.len() == 64
                        && s.chars().all(|c| c.is_ascii_hexdigit())
                    {
                        *v = Value::String("<digest>".into());
                    } else {
                        walk(v);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut v = run.json();
    walk(&mut v);
    serde_json::to_string_pretty(&v)
        .unwrap()
        .replace(&sb.path().display().to_string(), "<sandbox>")
}

#[test]
fn apply_v1_apply_v2_rollback_runs_v1_and_releases_lists_three() {
    if !double_ready() {
        return;
    }
    let sb = fly_sandbox(FILE);
    with_image(&sb, V1);
    sb.deploy(&["apply", FILE]).expect_code(0);
    assert_eq!(deployed_image(&sb, APP), V1);
    // Unchanged: no release.
    sb.deploy(&["apply", FILE]).expect_code(0);
    with_image(&sb, V2);
    sb.deploy(&["apply", FILE]).expect_code(0);
    assert_eq!(deployed_image(&sb, APP), V2);

    let rollback = sb.deploy(&["rollback", FILE, "--json"]);
    rollback.expect_code(0);
    rollback.assert_no_canary(&canary_tokens());
    assert_eq!(
        deployed_image(&sb, APP),
        V1,
        "the double runs the first image"
    );
    let list = sb.deploy(&["releases", FILE, "--json"]);
    list.expect_code(0);
    let v = list.json();
    let releases = v["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 3, "{v}");
    assert_eq!(
        releases[0]["image_id"], V1,
        "Fly's deployed image, from status --json"
    );
    assert_eq!(releases[1]["image_id"], V2);
    assert_eq!(releases[2]["action"], "rollback");
    assert_eq!(releases[2]["rollback_to"], 1);
    assert_eq!(releases[2]["image_id"], V1);
    assert_eq!(v["current"], 3);
    // The recorded fly.toml went with it: the double's config is release 1's file.
    let state = fly_state(&sb);
    let double_releases = state["apps"][APP]["releases"].as_array().unwrap();
    assert_eq!(
        double_releases.last().unwrap()["config_sha256"],
        double_releases[0]["config_sha256"]
    );
    // Values never reach the record.
    let record = std::fs::read_to_string(sb.wb_home().join("cloud-single/releases.json")).unwrap();
    for (_, value) in CANARIES {
        assert!(!record.contains(value));
    }
    settings().bind(|| {
        insta::assert_snapshot!("rollback@cloud-single.org", normalized(&sb, &rollback));
        insta::assert_snapshot!("releases@cloud-single.org", normalized(&sb, &list));
    });

    // The next apply says it replaces the rollback, then proceeds: the file wins.
    let next = sb.deploy(&["apply", FILE]);
    next.expect_code(0);
    assert!(
        next.stderr.contains(&format!(
            "warning: release 3 is a rollback to release 1 — this apply replaces it with what {FILE} says (the file is the source of truth)"
        )),
        "{}",
        next.stderr
    );
    assert_eq!(deployed_image(&sb, APP), V2);
}

#[test]
fn rollback_needs_an_earlier_release() {
    if !double_ready() {
        return;
    }
    let sb = fly_sandbox(FILE);
    let none = sb.deploy(&["rollback", FILE, "--json"]);
    none.expect_code(1);
    assert_eq!(
        none.json()["error"]["message"],
        "no releases on record — nothing to roll back to (apply first)"
    );
    sb.deploy(&["apply", FILE]).expect_code(0);
    let mutations = mutating(&calls(&sb)).len();
    let one = sb.deploy(&["rollback", FILE, "--json"]);
    one.expect_code(1);
    assert_eq!(
        one.json()["error"]["message"],
        "only one release on record (1) — nothing earlier to roll back to"
    );
    let nine = sb.deploy(&["rollback", FILE, "--to", "9", "--json"]);
    nine.expect_code(1);
    assert_eq!(
        nine.json()["error"]["message"],
        "no release 9 on record — the kept releases are 1–1 (see `releases`)"
    );
    assert_eq!(
        mutating(&calls(&sb)).len(),
        mutations,
        "a refused rollback changes nothing"
    );
}

fn edit_fly_state(sb: &Sandbox, change: impl FnOnce(&mut Value)) {
    let mut state = fly_state(sb);
    change(&mut state);
    std::fs::write(
        sb.home().join(".fly-double/state.json"),
        serde_json::to_string_pretty(&state).unwrap(),
    )
    .unwrap();
}

#[test]
fn drift_an_app_removed_or_changed_behind_the_kits_back_is_shown_and_converged() {
    if !double_ready() {
        return;
    }
    let sb = fly_sandbox(FILE);
    with_image(&sb, V1);
    sb.deploy(&["apply", FILE]).expect_code(0);
    let quiet = sb.deploy(&["plan", FILE, "--live", "--json"]);
    quiet.expect_code(0);
    assert_eq!(quiet.json()["drift"], serde_json::json!([]));

    // An image changed by hand: plan --live says so, apply re-deploys the release's.
    edit_fly_state(&sb, |s| {
        for m in s["apps"][APP]["machines"].as_array_mut().unwrap() {
            m["image"] = Value::String("ghcr.io/someone/else:9".into());
        }
    });
    let plan = sb.deploy(&["plan", FILE, "--live", "--json"]);
    plan.expect_code(0);
    assert_eq!(
        plan.json()["drift"],
        serde_json::json!([format!(
            "re-deploy: ghcr.io/someone/else:9 runs, release 1 deployed {V1}"
        )])
    );
    let fixed = sb.deploy(&["apply", FILE, "--json"]);
    fixed.expect_code(0);
    assert_eq!(
        fixed.json()["changed"],
        true,
        "drift is never \"unchanged\""
    );
    assert_eq!(deployed_image(&sb, APP), V1);

    // The app deleted in the provider: plan --live says so, apply re-creates it.
    edit_fly_state(&sb, |s| {
        s["apps"].as_object_mut().unwrap().remove(APP);
    });
    let plan = sb.deploy(&["plan", FILE, "--live", "--json"]);
    plan.expect_code(0);
    let drift = plan.json()["drift"].clone();
    assert_eq!(
        drift,
        serde_json::json!([
            "re-create: the provider reports no app (release 2 was applied; it was removed behind the kit's back)"
        ]),
    );
    assert!(
        plan.json()["changes"]
            .as_array()
            .unwrap()
            .contains(&drift[0])
    );
    let again = sb.deploy(&["apply", FILE, "--json"]);
    again.expect_code(0);
    assert_eq!(again.json()["changed"], true);
    assert!(fly_state(&sb)["apps"][APP].is_object(), "the app is back");
    assert_eq!(deployed_image(&sb, APP), V1);
}

#[test]
fn previews_apply_and_down_create_and_remove_their_own_app() {
    if !double_ready() {
        return;
    }
    let sb = fly_sandbox(FILE);
    sb.deploy(&["apply", FILE]).expect_code(0);
    let preview = sb.deploy(&["apply", FILE, "--preview", "pr-7", "--json"]);
    preview.expect_code(0);
    preview.assert_no_canary(&canary_tokens());
    assert_eq!(preview.json()["id"], "cloud-single-pr-7");
    assert_eq!(preview.json()["url"], "https://wb-team-engine-pr-7.fly.dev");
    assert!(fly_state(&sb)["apps"]["wb-team-engine-pr-7"].is_object());
    // Its own bearer: never the base's.
    let base = stored(&sb, "cloud-single", "WB_PUBLIC_BEARER").unwrap();
    let own = stored(&sb, "cloud-single-pr-7", "WB_PUBLIC_BEARER").unwrap();
    assert_ne!(base, own);
    let record = xtask::state::releases::list(&sb.wb_home().join("cloud-single-pr-7"));
    assert_eq!(record[0].preview_of.as_deref(), Some("cloud-single"));

    let list = sb.deploy(&["previews", FILE, "--json"]);
    list.expect_code(0);
    settings().bind(|| {
        insta::assert_snapshot!("previews@cloud-single.org", normalized(&sb, &list));
    });
    let status = sb.deploy(&["status", FILE, "--preview", "pr-7"]);
    status.expect_code(0);
    assert!(
        status.stdout.contains("wb-team-engine-pr-7"),
        "{}",
        status.stdout
    );

    let down = sb.deploy(&["down", FILE, "--preview", "pr-7", "--json"]);
    down.expect_code(0);
    assert_eq!(down.json()["preview_ended"], true);
    assert!(
        fly_state(&sb)["apps"]["wb-team-engine-pr-7"].is_null(),
        "purged"
    );
    assert!(
        fly_state(&sb)["apps"][APP].is_object(),
        "the base is untouched"
    );
    assert!(!sb.wb_home().join("cloud-single-pr-7").exists());
    let none = sb.deploy(&["previews", FILE, "--json"]);
    assert_eq!(none.json()["previews"], serde_json::json!([]));
}

#[test]
fn preview_names_follow_the_rules() {
    let sb = fly_sandbox(FILE);
    let bad = sb.deploy(&["plan", FILE, "--preview", "PR_7", "--json"]);
    bad.expect_code(1);
    assert_eq!(
        bad.json()["error"]["message"],
        "preview name `PR_7` is not a slug (^[a-z0-9][a-z0-9-]*$) — use lowercase letters, digits and `-`, e.g. `pr-7`"
    );
    let long = "x".repeat(50);
    let run = sb.deploy(&["plan", FILE, "--preview", &long, "--json"]);
    run.expect_code(1);
    assert_eq!(
        run.json()["error"]["message"],
        format!(
            "the preview's APP `wb-team-engine-{long}` (65 characters) is not an app name (^[a-z][a-z0-9-]{{0,62}}$: at most 63) — use a shorter preview name"
        )
    );
    let not_here = sb.deploy(&["releases", FILE, "--preview", "pr-7"]);
    not_here.expect_code(2);
}

/// The release book keeps the last 20, numbers on, and its newest is the last-applied
/// record until forgotten (then plan sees nothing applied; the history stays).
#[test]
fn releases_keep_the_last_20_and_the_newest_is_last_applied() {
    use xtask::state::releases::{self, Release};
    let dir = tempfile::tempdir().unwrap();
    for i in 0..23u32 {
        let mut r = Release {
            time: format!("t{i}"),
            action: "apply".into(),
            image: format!("img:{i}"),
            kit_version: "0".into(),
            ..Default::default()
        };
        r.applied
            .intended
            .parts
            .insert("image".into(), format!("{i:064x}"));
        assert_eq!(releases::append(dir.path(), r).unwrap(), i + 1);
    }
    let list = releases::list(dir.path());
    assert_eq!(list.len(), 20);
    assert_eq!((list[0].number, list[19].number), (4, 23));
    let applied = xtask::state::last_applied(dir.path()).unwrap();
    assert_eq!(applied.intended.parts["image"], format!("{:064x}", 22));
    xtask::state::forget_applied(dir.path()).unwrap();
    assert!(xtask::state::last_applied(dir.path()).is_none());
    assert_eq!(releases::list(dir.path()).len(), 20, "the history stays");
    let mode = std::os::unix::fs::MetadataExt::mode(
        &std::fs::metadata(dir.path().join("releases.json")).unwrap(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        releases::rfc3339(std::time::Duration::from_secs(1_795_000_000)),
        "2026-11-18T11:06:40Z"
    );
    assert_eq!(
        releases::rfc3339(std::time::Duration::from_secs(951_782_400)),
        "2000-02-29T00:00:00Z"
    );
}
