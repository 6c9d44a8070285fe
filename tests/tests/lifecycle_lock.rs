//! One apply at a time (SPEC §14, §18; issue #14 item 2): the recipe runs in its own
//! process group recorded in the lock, so a kit killed with SIGKILL cannot leave a
//! recipe mutating beside the next apply. Runs on the flyctl double, slowed by its
//! `delay` file.

mod cloud_support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use cloud_support::*;
use serde_json::Value;
use wb_tests::{Run, Sandbox};

const FILE: &str = "cloud-saas.org";

/// The shipped cloud-saas with its files on the app's volume (`STORAGE: local-fs`), so
/// an apply creates one `wbdata` volume: the race tests count them.
fn slowed(delay: &str) -> Sandbox {
    let sb = fly_sandbox(FILE);
    let path = sb.work().join(FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(":STORAGE: s3\n"));
    std::fs::write(
        &path,
        text.replace(":STORAGE: s3\n", ":STORAGE: local-fs\n"),
    )
    .unwrap();
    sb.write("home/.fly-double/delay", delay);
    sb
}

/// `deploy <args>` started in the background, its output to files (a killed kit's
/// orphans may hold a pipe open for long).
fn start(sb: &Sandbox, args: &[&str], tag: &str) -> Child {
    let mut all = vec!["deploy"];
    all.extend_from_slice(args);
    let out = std::fs::File::create(sb.path().join(format!("{tag}.out"))).unwrap();
    let err = std::fs::File::create(sb.path().join(format!("{tag}.err"))).unwrap();
    sb.kit(&all)
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("the kit starts")
}

fn finish(sb: &Sandbox, mut child: Child, tag: &str) -> Run {
    let status = child.wait().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(sb.path().join(format!("{tag}.out"))).unwrap(),
        stderr: std::fs::read_to_string(sb.path().join(format!("{tag}.err"))).unwrap(),
    }
}

fn lock_text(sb: &Sandbox) -> String {
    std::fs::read_to_string(sb.wb_home().join("cloud-saas/apply.lock")).unwrap_or_default()
}

/// Waits until the lock records a recipe group (the apply is mid-recipe).
fn wait_for_recipe(sb: &Sandbox) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lock_text(sb).contains("pgid ") {
        assert!(
            Instant::now() < deadline,
            "no recipe started: {}",
            lock_text(sb)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the recipe running is `up`'s, past its first mutating call (an apply
/// probes with a read-only `status` first, whose group is gone by then).
fn wait_for_mutation(sb: &Sandbox) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while mutating(&calls(sb)).is_empty() {
        assert!(Instant::now() < deadline, "no mutating call came");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The double's calls come in runs of one process group each: once a group's calls
/// stop, that group never calls again (never two mutation streams side by side).
#[track_caller]
fn assert_one_stream_at_a_time(calls: &[Value]) {
    let groups: Vec<i64> = calls.iter().map(|c| c["pgid"].as_i64().unwrap()).collect();
    let mut done: Vec<i64> = Vec::new();
    for pair in groups.windows(2) {
        if pair[0] != pair[1] {
            done.push(pair[0]);
            assert!(
                !done.contains(&pair[1]),
                "two recipe runs interleaved in the double's call log: {groups:?}"
            );
        }
    }
}

#[track_caller]
fn assert_one_volume(sb: &Sandbox) {
    let text = std::fs::read_to_string(sb.home().join(".fly-double/state.json")).unwrap();
    let state: Value = serde_json::from_str(&text).unwrap();
    let volumes = state["apps"]["wb-saas"]["volumes"].as_array().unwrap();
    let wbdata = volumes.iter().filter(|v| v["name"] == "wbdata").count();
    assert_eq!(wbdata, 1, "wbdata volumes: {volumes:?}");
}

/// One round of the race: kill -9 the kit mid-apply, then apply again at once.
fn kill_race(round: u64) {
    let sb = slowed("0.03");
    let first = start(&sb, &["apply", FILE, "--json"], "first");
    let pid = first.id();
    wait_for_recipe(&sb);
    // Somewhere in the recipe: 0–900 ms into it (its ~8 flyctl calls take ~1 s).
    std::thread::sleep(Duration::from_millis((round * 137) % 900));
    // SAFETY: SIGKILL to the kit we started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let killed = finish(&sb, first, "first");
    assert_eq!(killed.code, -1, "killed by SIGKILL");

    let next = sb.deploy(&["apply", FILE, "--lock-wait", "30"]);
    next.expect_code(0);
    assert!(
        next.stderr.contains(&format!(
            "a previous run (pid {pid}) ended without releasing"
        )),
        "{}",
        next.stderr
    );
    assert!(next.stderr.contains("— proceeding"), "{}", next.stderr);
    let calls = calls(&sb);
    assert_one_stream_at_a_time(&calls);
    assert_one_volume(&sb);
    assert!(
        lock_text(&sb).is_empty(),
        "a clean release empties the lock: {}",
        lock_text(&sb)
    );
}

#[test]
fn kill_9_mid_apply_never_lets_two_recipes_mutate_20_rounds() {
    if !double_ready() {
        return;
    }
    let began = Instant::now();
    // Five sandboxes at a time: 20 rounds well under a minute on a shared machine.
    let threads: Vec<_> = (0..5u64)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..4u64 {
                    kill_race(t * 4 + i);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a round failed");
    }
    assert!(
        began.elapsed() < Duration::from_secs(60),
        "20 rounds took {:?}",
        began.elapsed()
    );
}

#[test]
fn an_orphaned_recipe_holds_the_lock_until_its_group_ends() {
    if !double_ready() {
        return;
    }
    let sb = slowed("0.3");
    let first = start(&sb, &["apply", FILE, "--json"], "first");
    let pid = first.id();
    wait_for_recipe(&sb);
    wait_for_mutation(&sb);
    let pgid: u32 = lock_text(&sb)
        .lines()
        .find_map(|l| l.strip_prefix("pgid "))
        .unwrap()
        .parse()
        .unwrap();
    // SAFETY: SIGKILL to the kit we started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    finish(&sb, first, "first");
    // The recipe lives on (re-parented): a read-only verb's temp sweep spares its files
    // (its fly.toml), though the kit that made them is gone.
    let orphan_temp = temp_entries(&sb);
    assert_eq!(orphan_temp.len(), 1, "{orphan_temp:?}");
    sb.deploy(&["url", FILE]).expect_code(0);
    assert!(
        sb.path()
            .join("tmp")
            .join(&orphan_temp[0])
            .join("fly.toml")
            .is_file(),
        "the sweep removed a live recipe's fly.toml"
    );
    // The next apply refuses at once, naming both.
    let refused = sb.deploy(&["apply", FILE, "--json"]);
    refused.expect_code(1);
    let message = refused.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        message,
        format!(
            "the recipe of a killed run (pid {pid}) still runs as process group {pgid} — pass --lock-wait SECONDS to wait for it, or stop it with `kill -TERM -{pgid}`; nothing was changed"
        )
    );
    let next = sb.deploy(&["apply", FILE, "--lock-wait", "30"]);
    next.expect_code(0);
    assert_one_stream_at_a_time(&calls(&sb));
    assert_one_volume(&sb);
    assert!(
        temp_entries(&sb).is_empty(),
        "swept once the group ended: {:?}",
        temp_entries(&sb)
    );
}

#[test]
fn two_applies_at_once_one_runs_the_other_refuses_naming_the_pid_or_waits() {
    if !double_ready() {
        return;
    }
    let sb = slowed("0.2");
    let first = start(&sb, &["apply", FILE], "first");
    let pid = first.id();
    wait_for_recipe(&sb);
    let refused = sb.deploy(&["apply", FILE, "--json"]);
    refused.expect_code(1);
    let lock = sb.wb_home().join("cloud-saas/apply.lock");
    assert_eq!(
        refused.json()["error"]["message"],
        format!(
            "another run of this deployment holds {} (pid {pid}) — pass --lock-wait SECONDS to wait for it; nothing was changed",
            lock.display()
        )
    );
    let first = finish(&sb, first, "first");
    first.expect_code(0);
    assert!(xtask::state::last_applied(&sb.wb_home().join("cloud-saas")).is_some());

    // With --lock-wait the second waits its turn; both converge, one after the other.
    let a = start(&sb, &["apply", FILE, "--force"], "a");
    wait_for_recipe(&sb);
    let b = sb.deploy(&["apply", FILE, "--force", "--lock-wait", "30"]);
    b.expect_code(0);
    finish(&sb, a, "a").expect_code(0);
    assert!(
        !b.stderr.contains("ended without releasing"),
        "{}",
        b.stderr
    );
    assert_one_stream_at_a_time(&calls(&sb));
    assert_one_volume(&sb);
    let down = sb.deploy(&["down", FILE]);
    down.expect_code(0);
}

/// SIGTERM or SIGINT to the kit alone mid-apply reaches the recipe's whole group: the
/// kit exits 143/130 with one JSON error, and when it has exited nothing of the recipe
/// (its flyctl calls included) is left running; the lock is released clean.
#[test]
fn a_signal_to_the_kit_alone_ends_the_recipes_whole_group() {
    if !double_ready() {
        return;
    }
    for (signal, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let sb = slowed("0.5");
        let kit = start(&sb, &["apply", FILE, "--json"], "kit");
        let pid = kit.id();
        wait_for_recipe(&sb);
        let pgid: i32 = lock_text(&sb)
            .lines()
            .find_map(|l| l.strip_prefix("pgid "))
            .unwrap()
            .parse()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: a signal to the kit we started.
        unsafe { libc::kill(pid as i32, signal) };
        let run = finish(&sb, kit, "kit");
        assert_eq!(run.code, code, "{}", run.stderr);
        assert_eq!(run.json()["error"]["kind"], "interrupted");
        // SAFETY: signal 0 only checks whether the group has a process.
        let alive = unsafe { libc::kill(-pgid, 0) } == 0;
        assert!(!alive, "the recipe's group {pgid} outlived the kit");
        assert!(lock_text(&sb).is_empty(), "{}", lock_text(&sb));
        assert!(temp_entries(&sb).is_empty(), "{:?}", temp_entries(&sb));
    }
}
