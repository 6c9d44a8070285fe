//! The newcomer's path (issue #13): progress on long steps and silence about builds on
//! an unchanged apply, doctor's real probes, the messages a first user meets, the
//! zero-config `up-local` and its argument-less follow-ups, `connect`, and the README's
//! help excerpts. Messages are asserted whole.

mod cloud_support;
mod local_support;

use std::os::unix::fs::PermissionsExt;

use local_support::*;
use wb_tests::Sandbox;

/// A sandbox whose `process` backend builds the workspace's engine with the real cargo
/// (no `WB_ENGINE_BIN`), with the toolchain reachable although `HOME` is the sandbox's.
fn cargo_sandbox() -> Sandbox {
    let mut sb = Sandbox::new();
    sb.set("WB_VMM_BACKEND", "process");
    for name in [
        "CARGO",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
        "CARGO_TARGET_DIR",
    ] {
        if let Ok(v) = std::env::var(name) {
            sb.set(name, v);
        }
    }
    if std::env::var("RUSTUP_HOME").is_err() {
        let home = std::env::var("HOME").unwrap_or_default();
        sb.set("RUSTUP_HOME", format!("{home}/.rustup"));
        if std::env::var("CARGO_HOME").is_err() {
            sb.set("CARGO_HOME", format!("{home}/.cargo"));
        }
    }
    sb
}

#[test]
fn an_unchanged_engine_build_prints_nothing_about_builds_even_when_progress_is_asked() {
    // The harness built target/debug/wb-engine; the kit's own `cargo build -p wb-engine`
    // is then up to date, as on any apply after the first.
    wb_tests::engine_bin();
    let mut sb = cargo_sandbox();
    sb.set("WB_PROGRESS", "1");
    let file = write_deployment(&sb, &unique_id("quiet"), "", "");
    let _guard = DownOnDrop::new(&sb, &file);
    for round in ["first", "unchanged"] {
        let run = sb.deploy(&["apply", &file]);
        run.expect_code(0);
        for word in ["building", "Compiling", "Finished", "cargo build"] {
            assert!(
                !run.stderr.contains(word),
                "{round} apply mentions `{word}`:\n{}",
                run.stderr
            );
        }
        if round == "first" {
            let port = run
                .stderr
                .lines()
                .find_map(|l| l.strip_prefix("waiting for the engine on port "))
                .expect("the health wait is said")
                .split(' ')
                .next()
                .unwrap()
                .to_string();
            assert!(
                run.stderr
                    .lines()
                    .any(|l| l
                        == format!("waiting for the engine on port {port} to answer /health …")),
                "{}",
                run.stderr
            );
        }
    }
}

/// A stand-in for cargo with work to do: it says `Compiling` (as cargo does, on stderr)
/// and names the real engine in its JSON messages. Compiling the real engine from
/// scratch would cost a minute of a shared 2-core machine per run.
fn compiling_cargo(sb: &Sandbox) -> String {
    let engine = wb_tests::engine_bin();
    let script = format!(
        "#!/bin/sh\necho '   Compiling wb-engine v0.1.0 (/repo/engine)' >&2\nsleep 0.2\necho '{{\"reason\":\"compiler-artifact\",\"target\":{{\"name\":\"wb-engine\"}},\"executable\":\"{}\",\"fresh\":false}}'\necho '    Finished `dev` profile [unoptimized + debuginfo] target(s) in 0.20s' >&2\n",
        engine.display()
    );
    let path = sb.write("bin/cargo-compiling", &script);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[test]
fn a_build_with_work_is_announced_when_asked_and_quiet_on_a_pipe() {
    for asked in [false, true] {
        let mut sb = cargo_sandbox();
        let cargo = compiling_cargo(&sb);
        sb.set("CARGO", cargo);
        if asked {
            sb.set("WB_PROGRESS", "1");
        }
        let file = write_deployment(
            &sb,
            &unique_id(if asked { "loud" } else { "quiet" }),
            "",
            "",
        );
        let _guard = DownOnDrop::new(&sb, &file);
        let run = sb.deploy(&["apply", &file, "--json"]);
        run.expect_code(0);
        run.json();
        assert!(!run.stderr.contains("Finished"), "{}", run.stderr);
        if !asked {
            // stderr is a pipe here: no progress unless asked.
            assert!(!run.stderr.contains("building"), "{}", run.stderr);
            assert!(!run.stderr.contains("waiting for"), "{}", run.stderr);
            continue;
        }
        let lines: Vec<&str> = run.stderr.lines().collect();
        let at = lines
            .iter()
            .position(|l| {
                *l == "building the reference engine (cargo build -p wb-engine --bin wb-engine) …"
            })
            .unwrap_or_else(|| panic!("no build line:\n{}", run.stderr));
        assert_eq!(lines[at + 1], "  compiling wb-engine v0.1.0 (/repo/engine)");
    }
}

// ---- doctor ----------------------------------------------------------------------

/// runc's own words when a rootless or nested host refuses RLIMIT_NOFILE (seen on this
/// project's machine with podman 4.3 and no containers.conf).
const RUNC_RLIMIT: &str = "Error: runc: runc create failed: unable to start container process: error during container init: error setting rlimits for ready process: error setting rlimit type 7: operation not permitted: OCI permission denied";

#[test]
fn the_rlimit_failure_gets_a_suggestion() {
    assert_eq!(
        xtask::local::backend::container::rlimit_hint(RUNC_RLIMIT).as_deref(),
        Some(
            "the container runtime may not raise resource limit 7 on this host (rootless or nested) — set `default_ulimits = [\"nofile=1024:1024\"]` under [containers] in ~/.config/containers/containers.conf (or the file CONTAINERS_CONF names), or use docker (WB_VMM_BACKEND=docker)"
        )
    );
    assert_eq!(
        xtask::local::backend::container::rlimit_hint("Error: no such image"),
        None
    );
}

#[test]
fn doctor_with_no_working_backend_says_what_to_do_and_exits_1() {
    let mut sb = Sandbox::new();
    let empty = sb.path().join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    sb.set("PATH", empty.display().to_string());
    sb.set("WB_ENGINE_BIN", "/nonexistent/wb-engine");
    let run = sb.deploy(&["doctor"]);
    run.expect_code(1);
    let lines: Vec<&str> = run.stderr.lines().collect();
    for want in [
        "  absent   docker       a local container backend (its daemon answers `docker info`) — install docker, or use podman",
        "  absent   podman       a local container backend (it ran a container: `podman init` of the engine image) — install podman (rootless works), or use docker",
        "  absent   engine image what the container backends run (localhost/wb-engine:dev) — no container tool to hold it (only the process backend can run)",
        "  absent   wb-engine    the process backend's engine — WB_ENGINE_BIN=/nonexistent/wb-engine is not a file — point it at a wb-engine binary",
        "apply cannot pick a local backend: no local backend works here — see each line above; `cargo xtask deploy doctor` again after the fix",
    ] {
        assert!(
            lines.contains(&want),
            "missing {want:?} in:\n{}",
            run.stderr
        );
    }
    let v = sb.deploy(&["doctor", "--json"]).json();
    assert_eq!(v["ok"], false);
    assert_eq!(v["backend"], serde_json::Value::Null);
}

#[test]
fn doctor_runs_a_real_podman_container_and_names_the_pick() {
    if !wb_tests::require_tool("podman") {
        return;
    }
    let mut sb = Sandbox::new();
    sb.set(
        "CONTAINERS_CONF",
        wb_tests::repo_root()
            .join("tests/containers.conf")
            .display()
            .to_string(),
    );
    sb.set(
        "WB_ENGINE_BIN",
        wb_tests::engine_bin().display().to_string(),
    );
    // The reference image must be in podman's store for the container probe.
    let has_image = std::process::Command::new("podman")
        .args(["image", "exists", "localhost/wb-engine:dev"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_image {
        let built = sb
            .kit(&["engine", "image"])
            .env("WB_VMM_BACKEND", "podman")
            .output()
            .unwrap();
        assert!(
            built.status.success(),
            "{}",
            String::from_utf8_lossy(&built.stderr)
        );
    }
    let run = sb.deploy(&["doctor"]);
    run.expect_code(0);
    assert!(
        run.stderr.lines().any(|l| l
            == "  ok       podman       a local container backend (it ran a container: `podman init` of the engine image)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .lines()
            .any(|l| l == "apply would run local deployments with: podman"
                || l == "apply would run local deployments with: docker"),
        "{}",
        run.stderr
    );
    let left = std::process::Command::new("podman")
        .args([
            "ps",
            "-a",
            "--filter",
            "name=wb-doctor-",
            "--format",
            "{{.Names}}",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "",
        "the probe container is removed"
    );
}

// ---- messages that were wrong or dead ends -----------------------------------------

fn process_sandbox() -> Sandbox {
    let mut sb = Sandbox::new();
    sb.set("WB_VMM_BACKEND", "process");
    sb.set(
        "WB_ENGINE_BIN",
        wb_tests::engine_bin().display().to_string(),
    );
    sb
}

#[test]
fn apply_names_the_file_that_stops_it_and_plan_after_down_says_start_again() {
    let sb = process_sandbox();
    let id = unique_id("hint");
    let file = write_deployment(&sb, &id, "", "");
    let _guard = DownOnDrop::new(&sb, &file);
    let run = sb.deploy(&["apply", &file]);
    run.expect_code(0);
    let hint = format!("  it outlives this command; `cargo xtask deploy down {file}` stops it");
    assert!(run.stderr.lines().any(|l| l == hint), "{}", run.stderr);
    // The hint works as written.
    sb.deploy(&["down", &file]).expect_code(0);

    let plan = sb.deploy(&["plan", &file, "--json"]);
    plan.expect_code(0);
    assert_eq!(
        plan.json()["changes"],
        serde_json::json!(["start the deployment again (stopped by `down` on this machine)"])
    );
    let human = sb.deploy(&["plan", &file]);
    assert!(!human.stderr.contains("never applied"), "{}", human.stderr);

    // A deployment never applied still says so.
    let other = write_deployment(&sb, &unique_id("fresh"), "", "");
    let plan = sb.deploy(&["plan", &other, "--json"]);
    assert_eq!(
        plan.json()["changes"],
        serde_json::json!(["create the deployment (never applied from this machine)"])
    );

    // After apply the record is back and the marker is silent.
    sb.deploy(&["apply", &file]).expect_code(0);
    let plan = sb.deploy(&["plan", &file, "--json"]);
    assert_eq!(
        plan.json()["changes"],
        serde_json::json!(["nothing — the deployment is as last applied"])
    );
}

#[test]
fn a_file_that_cannot_be_read_is_headed_error() {
    let sb = Sandbox::new();
    let dir = sb.path().join("work/adir.org");
    std::fs::create_dir(&dir).unwrap();
    let run = sb.deploy(&["validate", "adir.org"]);
    run.expect_code(1);
    assert_eq!(
        run.stderr,
        "error: adir.org: is a directory, not a deployment file\n"
    );
    let run = sb.deploy(&["validate"]);
    run.expect_code(1);
    assert_eq!(
        run.stderr,
        "error: deployment.org: no such file — create one with `cargo xtask deploy init local` (or `init cloud`)\n"
    );
}

#[test]
fn a_recipe_without_its_spine_is_named_as_such() {
    let mut sb = Sandbox::new();
    sb.write("work/recipes/heroku/bootstrap.sh", "#!/bin/bash\n");
    let file = "* x :deployment:\n:PROPERTIES:\n:ENGINE_PLACE: cloud\n:APP: x\n:REGION: iad\n:PROVIDER: heroku\n:END:\n";
    sb.write("work/x.org", file);
    let root = sb.work().join("recipes");
    let want = format!(
        "provider `heroku` has no spine beside it — copy _recipe.sh into {}, or remove the root to use the bundled spine",
        root.display()
    );
    let messages = |sb: &Sandbox| -> Vec<String> {
        let v = sb.deploy(&["validate", "x.org", "--json"]).json();
        v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["message"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(messages(&sb).contains(&want), "{:?}", messages(&sb));
    // The same through WB_PROVIDERS_DIR.
    sb.set("WB_PROVIDERS_DIR", root.display().to_string());
    assert!(messages(&sb).contains(&want), "{:?}", messages(&sb));
}

// ---- up-local, argument-less follow-ups, connect ----------------------------------

#[test]
fn up_local_then_status_url_connect_down_with_no_argument() {
    let sb = process_sandbox();
    let up = sb.deploy(&["up-local"]);
    up.expect_code(0);
    struct Down<'a>(&'a Sandbox);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = self.0.deploy(&["down"]);
        }
    }
    let _down = Down(&sb);
    assert!(
        up.stderr
            .lines()
            .any(|l| l == "  it outlives this command; `cargo xtask deploy down` stops it"),
        "{}",
        up.stderr
    );
    let status = sb.deploy(&["status", "--json"]);
    status.expect_code(0);
    let v = status.json();
    assert_eq!(v["id"], "local");
    assert_eq!(v["running"], true);
    let url = v["url"].as_str().unwrap().to_string();
    // Only a log that exists is reported.
    assert!(std::path::Path::new(v["log"].as_str().unwrap()).is_file());
    assert_eq!(v["log_command"], serde_json::Value::Null);

    let bare = sb.deploy(&["url"]);
    bare.expect_code(0);
    assert_eq!(bare.stdout, format!("{url}\n"));

    let connect = sb.deploy(&["connect"]);
    connect.expect_code(0);
    let disco = sb.wb_home().join("local/disco/runtime.json");
    assert_eq!(
        connect.stdout,
        format!(
            "WB_ENGINE_URL={url}\nWB_ENGINE_TOKEN_FILE={}\n",
            disco.display()
        )
    );
    assert_eq!(
        connect.stderr,
        "the token is its `token` field (the engine's discovery file: port, pid, token) in WB_ENGINE_TOKEN_FILE — never printed; send it as `Authorization: Bearer …`\n"
    );
    let token = serde_json::from_slice::<serde_json::Value>(&std::fs::read(&disco).unwrap())
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!connect.stdout.contains(&token) && !connect.stderr.contains(&token));
    let cj = sb.deploy(&["connect", "--json"]).json();
    assert_eq!(cj["url"], url.as_str());
    assert_eq!(cj["token_file"], disco.display().to_string());
    assert_eq!(cj["token_field"], "token");
    assert!(!cj.to_string().contains(&token));

    sb.deploy(&["verify"]).expect_code(0);
    let down = sb.deploy(&["down"]);
    down.expect_code(0);
    assert_eq!(
        down.stderr,
        format!(
            "runtime down — data preserved at {}\n",
            sb.wb_home().join("local/data").display()
        )
    );
    // `local` is still accepted, and its help says it is the alias.
    let help = sb.deploy(&["help", "local"]);
    assert_eq!(help.stdout, sb.deploy(&["up-local", "--help"]).stdout);
    assert!(help.stdout.starts_with(
        "cargo xtask deploy up-local: zero-config local engine, no file needed (id `local`; alias: `local`)\n"
    ));
}

#[test]
fn with_no_file_and_no_zero_config_state_the_missing_file_is_said() {
    let sb = process_sandbox();
    let run = sb.deploy(&["status"]);
    run.expect_code(1);
    assert_eq!(
        run.stderr,
        "error: deployment.org: no such file — create one with `cargo xtask deploy init local` (or `init cloud`)\n"
    );
}

#[test]
fn status_json_on_podman_names_the_log_command_not_a_missing_file() {
    if !wb_tests::require_tool("podman") {
        return;
    }
    let mut sb = Sandbox::new();
    sb.set("WB_VMM_BACKEND", "podman");
    sb.set(
        "CONTAINERS_CONF",
        wb_tests::repo_root()
            .join("tests/containers.conf")
            .display()
            .to_string(),
    );
    let id = unique_id("plog");
    let file = write_deployment(&sb, &id, "", "");
    let _guard = DownOnDrop::new(&sb, &file);
    let run = sb.deploy(&["apply", &file]);
    run.expect_code(0);
    let v = sb.deploy(&["status", &file, "--json"]).json();
    assert_eq!(v["running"], true, "{v}");
    assert_eq!(v["log"], serde_json::Value::Null);
    assert_eq!(v["log_command"], format!("podman logs wb-{id}"));
}

// ---- the README shows every verb's help as the kit prints it -----------------------

#[test]
fn the_readme_shows_every_verbs_help_exactly() {
    let readme = std::fs::read_to_string(wb_tests::repo_root().join("README.md")).unwrap();
    let sb = Sandbox::new();
    let mut shown = Vec::new();
    let mut rest = readme.as_str();
    let marker = "```text\n$ cargo xtask deploy help ";
    while let Some(at) = rest.find(marker) {
        let block = &rest[at + marker.len()..];
        let (verb, body) = block.split_once('\n').unwrap();
        let body = &body[..body.find("```").unwrap()];
        let help = sb.deploy(&["help", verb]);
        help.expect_code(0);
        assert_eq!(
            body, help.stdout,
            "README's help of `{verb}` differs from the kit's"
        );
        shown.push(verb.to_string());
        rest = &block[body.len()..];
    }
    let verbs: Vec<String> = xtask::cli::VERBS
        .iter()
        .map(|v| v.name.to_string())
        .collect();
    assert_eq!(
        shown, verbs,
        "the README shows every verb's help, in the table's order"
    );
    assert!(readme.contains("[`engine/README.md`](engine/README.md)"));
}

#[test]
fn a_recipe_call_is_said_as_progress_when_asked() {
    if !cloud_support::double_ready() {
        return;
    }
    for asked in [false, true] {
        let mut sb = cloud_support::fly_sandbox("cloud-saas.org");
        if asked {
            sb.set("WB_PROGRESS", "1");
        }
        let run = sb.deploy(&["apply", "cloud-saas.org"]);
        run.expect_code(0);
        let said = run
            .stderr
            .lines()
            .any(|l| l == "running the fly recipe: up …");
        assert_eq!(said, asked, "{}", run.stderr);
    }
}

#[test]
fn doctor_with_a_cloud_file_exits_1_when_its_provider_cli_is_missing() {
    let mut sb = Sandbox::new();
    let empty = sb.path().join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    sb.set("PATH", empty.display().to_string());
    sb.set(
        "WB_ENGINE_BIN",
        wb_tests::engine_bin().display().to_string(),
    );
    let text =
        std::fs::read_to_string(wb_tests::repo_root().join("deployments/cloud-saas.org")).unwrap();
    sb.write("work/cloud-saas.org", &text);
    // Without a file, a missing provider CLI is advice: the process backend works.
    sb.deploy(&["doctor"]).expect_code(0);
    let run = sb.deploy(&["doctor", "cloud-saas.org"]);
    run.expect_code(1);
    assert!(
        run.stderr.lines().any(|l| l
            == "cloud-saas.org: PROVIDER: fly needs flyctl or fly on PATH — install it; `apply` refuses without it"),
        "{}",
        run.stderr
    );
    // With the CLI on PATH (the flyctl double), the same file passes.
    sb.set(
        "PATH",
        format!("{}:{}", wb_tests::doubles_dir().display(), empty.display()),
    );
    sb.deploy(&["doctor", "cloud-saas.org"]).expect_code(0);
}

#[test]
fn nothing_running_names_the_apply_that_starts_it() {
    let sb = process_sandbox();
    let id = unique_id("idle");
    let file = write_deployment(&sb, &id, "", "");
    let run = sb.deploy(&["url", &file]);
    run.expect_code(1);
    assert_eq!(
        run.stderr,
        format!(
            "error: nothing is running for `{id}` — `cargo xtask deploy apply {file}` starts it\n"
        )
    );
    // The zero-config deployment's hint is `up-local`.
    std::fs::create_dir_all(sb.wb_home().join("local")).unwrap();
    let run = sb.deploy(&["connect"]);
    run.expect_code(1);
    assert_eq!(
        run.stderr,
        "error: nothing is running for `local` — `cargo xtask deploy up-local` starts it\n"
    );
}
