//! Fly scale-out (SPEC §13.3, §18 "Fly, per flyctl's source") through the Fly recipe and
//! the flyctl double, whose `scale count` is transcribed from flyctl's
//! `internal/command/scale/count_machines.go` (convergeGroupCounts): `SCALE: N` over
//! `REGION` + `REGIONS` with `--region` and `--max-per-region ⌈N/R⌉`, no volume, zero
//! mutating calls when converged, one scale call per change, dropped regions to 0.

mod cloud_support;

use cloud_support::*;
use serde_json::Value;
use wb_tests::{Run, Sandbox};

const FILE: &str = "cloud-saas.org";

/// The shipped SaaS file (postgres + s3: no volume) with `props` added to its drawer.
fn shaped(sb: &Sandbox, props: &str) {
    let path = sb.work().join(FILE);
    let text =
        std::fs::read_to_string(wb_tests::repo_root().join("deployments").join(FILE)).unwrap();
    assert!(text.contains(":REGION: iad\n"));
    std::fs::write(
        &path,
        text.replace(":REGION: iad\n", &format!(":REGION: iad\n{props}")),
    )
    .unwrap();
}

fn state(sb: &Sandbox) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(sb.home().join(".fly-double/state.json")).unwrap(),
    )
    .unwrap()
}

/// Machines per region, sorted.
fn machines(sb: &Sandbox) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for m in state(sb)["apps"]["wb-saas"]["machines"].as_array().unwrap() {
        let region = m["region"].as_str().unwrap().to_string();
        match out.iter_mut().find(|(r, _)| *r == region) {
            Some((_, n)) => *n += 1,
            None => out.push((region, 1)),
        }
    }
    out.sort();
    out
}

fn regions(list: &[(&str, usize)]) -> Vec<(String, usize)> {
    list.iter().map(|(r, n)| (r.to_string(), *n)).collect()
}

/// The argv of every `scale count` call after `from`.
fn scale_calls(sb: &Sandbox, from: usize) -> Vec<Vec<String>> {
    calls(sb)[from..]
        .iter()
        .filter(|c| c["command"] == "scale count")
        .map(|c| {
            c["argv"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

fn argv(words: &str) -> Vec<String> {
    words.split(' ').map(str::to_string).collect()
}

#[test]
fn scale_out_spreads_machines_over_regions_and_converges_with_one_call_per_change() {
    if !double_ready() {
        return;
    }
    let sb = fly_sandbox(FILE);
    shaped(&sb, ":SCALE: 3\n:REGIONS: ams\n");

    let first = sb.deploy(&["apply", FILE]);
    first.expect_code(0);
    first.assert_no_canary(&canary_tokens());
    assert!(
        !mutating(&calls(&sb)).contains(&"volumes create".to_string()),
        "SCALE > 1 makes no volume"
    );
    assert_eq!(
        scale_calls(&sb, 0),
        [argv(
            "scale count 3 -a wb-saas --region iad,ams --max-per-region 2 --yes"
        )]
    );
    assert_eq!(machines(&sb), regions(&[("ams", 1), ("iad", 2)]));
    assert!(
        state(&sb)["apps"]["wb-saas"]["volumes"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Unchanged: zero mutating calls.
    let before = calls(&sb).len();
    let again = sb.deploy(&["apply", FILE]);
    again.expect_code(0);
    assert!(again.stderr.contains("unchanged"), "{}", again.stderr);
    assert_eq!(mutating(&calls(&sb)[before..]), Vec::<String>::new());

    // Forced through the recipe: the deploy runs, the shape is already right, so no
    // scale call.
    let before = calls(&sb).len();
    sb.deploy(&["apply", FILE, "--force"]).expect_code(0);
    assert!(mutating(&calls(&sb)[before..]).contains(&"deploy".to_string()));
    assert_eq!(scale_calls(&sb, before), Vec::<Vec<String>>::new());

    // SCALE 3 → 2: one scale call; the extra machine goes from the fuller region.
    shaped(&sb, ":SCALE: 2\n:REGIONS: ams\n");
    let before = calls(&sb).len();
    let down_one = sb.deploy(&["apply", FILE, "--json"]);
    down_one.expect_code(0);
    assert!(
        down_one.json()["changes"].to_string().contains("SCALE"),
        "{}",
        down_one.stdout
    );
    assert_eq!(
        scale_calls(&sb, before),
        [argv(
            "scale count 2 -a wb-saas --region iad,ams --max-per-region 1 --yes"
        )]
    );
    assert_eq!(machines(&sb), regions(&[("ams", 1), ("iad", 1)]));
    // The kit runs the recipe's whole `up` on any change: the staged secrets and the
    // deploy run too (they create nothing), and the shape takes one scale call.
    assert_eq!(
        mutating(&calls(&sb)[before..]),
        ["secrets import", "deploy", "scale count"]
    );

    // ams dropped from the file: iad gets both, then ams goes to 0.
    shaped(&sb, ":SCALE: 2\n");
    let before = calls(&sb).len();
    sb.deploy(&["apply", FILE]).expect_code(0);
    assert_eq!(
        scale_calls(&sb, before),
        [
            argv("scale count 2 -a wb-saas --region iad --max-per-region 2 --yes"),
            argv("scale count 0 -a wb-saas --region ams --yes"),
        ]
    );
    assert_eq!(machines(&sb), regions(&[("iad", 2)]));

    // down destroys every machine; apply brings the shape back.
    sb.deploy(&["down", FILE]).expect_code(0);
    assert_eq!(machines(&sb), Vec::<(String, usize)>::new());
    sb.deploy(&["apply", FILE]).expect_code(0);
    assert_eq!(machines(&sb), regions(&[("iad", 2)]));
}

#[test]
fn the_double_refuses_more_machines_than_regions_allow_as_flyctl_does() {
    if !double_ready() {
        return;
    }
    let sb = fly_sandbox(FILE);
    shaped(&sb, ":SCALE: 2\n");
    sb.deploy(&["apply", FILE]).expect_code(0);
    // count_machines.go convergeGroupCounts: ErrMaxPerRegion when regions × max < N.
    let out = Run::from(
        std::process::Command::new(wb_tests::doubles_dir().join("fly"))
            .args(argv(
                "scale count 3 -a wb-saas --region iad --max-per-region 1 --yes",
            ))
            .env_clear()
            .env("PATH", double_path())
            .env("HOME", sb.home())
            .env("FLY_API_TOKEN", "fo1_cnry-flytoken-P3")
            .output()
            .unwrap(),
    );
    out.expect_code(1);
    assert_eq!(
        out.stderr.trim_end(),
        "Error: the number of regions by the maximum machines per region is fewer than the expected total"
    );
    assert_eq!(machines(&sb), regions(&[("iad", 2)]));
}
