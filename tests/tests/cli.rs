//! The core verbs as a user drives them: validate, plan, init, fmt --migrate, `deploy
//! FILE`, bare names, exit codes, `--json` shapes, and bad input that must never panic.

use std::os::unix::fs::PermissionsExt;

use wb_tests::{Run, Sandbox};

const LOCAL: &str = "* t :deployment:\n:PROPERTIES:\n:ID: t\n:ENGINE_PLACE: local\n:END:\n";

fn no_panic(run: &Run) {
    for text in [&run.stdout, &run.stderr] {
        assert!(
            !text.contains("panicked") && !text.contains("RUST_BACKTRACE"),
            "a panic reached the user:\n{text}"
        );
    }
    assert_ne!(run.code, 101, "exit 101 is a panic\n{}", run.stderr);
}

#[test]
fn shipped_local_validates_with_the_spec_summary() {
    let sb = Sandbox::new();
    let root = wb_tests::repo_root();
    let run = Run::from(
        sb.kit(&["deploy", "validate", "deployments/local.org"])
            .current_dir(&root)
            .output()
            .unwrap(),
    );
    run.expect_code(0);
    assert_eq!(
        run.stderr.trim(),
        "valid — local · single-tenant · storage=local-fs · db=sqlite"
    );
    assert_eq!(run.stdout, "", "human text goes to stderr");
}

#[test]
fn cloud_saas_lists_every_missing_secret_at_once_then_plans_redacted() {
    let mut sb = Sandbox::new();
    let root = wb_tests::repo_root();
    let file = root.join("deployments/cloud-saas.org");
    let file = file.to_str().unwrap();
    let run = sb.deploy(&["validate", "--json", file]);
    run.expect_code(1);
    let v = run.json();
    let messages: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(messages[0].starts_with("STORAGE: s3 needs WB_S3_KEY + WB_S3_SECRET"));
    assert!(messages[1].starts_with("DATABASE: postgres needs WB_DATABASE_URL"));
    assert!(messages[2].starts_with("secret `STRIPE_API_KEY` is declared but has no value"));
    assert!(
        v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["line"].is_u64())
    );

    let canaries = [
        "canary-k-3f9a",
        "canary-s=\"x y\"\nz",
        "postgres://u:canary-pw-77@db/wb",
        "canary-stripe-55",
    ];
    sb.set("WB_S3_KEY", canaries[0])
        .set("WB_S3_SECRET", canaries[1])
        .set("WB_DATABASE_URL", canaries[2]);
    sb.set("STRIPE_API_KEY", canaries[3]);
    let run = sb.deploy(&["plan", file]);
    run.expect_code(0);
    run.assert_no_canary(&canaries);
    assert!(
        run.stderr.contains("WB_S3_SECRET=<redacted>"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("STRIPE_API_KEY=<redacted>"));
    assert!(run.stderr.contains("[http_service]") && run.stderr.contains("app = \"wb-saas\""));
    let run = sb.deploy(&["plan", "--json", file]);
    run.expect_code(0);
    run.assert_no_canary(&canaries);
    let v = run.json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["verb"], "plan");
    assert_eq!(v["properties"]["APP"], "wb-saas");
    let env = v["engine_env"].as_array().unwrap();
    let get = |n: &str| {
        env.iter()
            .find(|e| e["name"] == n)
            .map(|e| e["value"].as_str().unwrap().to_string())
    };
    assert_eq!(get("WB_DATABASE_URL").as_deref(), Some("<redacted>"));
    assert_eq!(get("WB_REGISTRY").as_deref(), Some("/data/registry.db"));
    assert!(
        v["fly_toml"]
            .as_str()
            .unwrap()
            .contains("primary_region = \"iad\"")
    );
}

#[test]
fn plan_of_an_invalid_file_still_reports_properties() {
    let sb = Sandbox::new();
    let f = sb.write("work/bad.org", "* b\n:PROPERTIES:\n:ENGINE_PLACE: local\n:TENANCY_MODE: multi\n:API_TOKEN: canary-in-file-1\n:END:\n");
    let run = sb.deploy(&["plan", "--json", f.to_str().unwrap()]);
    run.expect_code(1);
    run.assert_no_canary(&["canary-in-file-1"]);
    let v = run.json();
    assert_eq!(v["ok"], false);
    assert_eq!(v["properties"]["TENANCY_MODE"], "multi");
    assert_eq!(v["properties"]["API_TOKEN"], "<redacted>");
    assert!(v["engine_env"].is_null() && v["fly_toml"].is_null());
    assert!(
        run.stderr.starts_with("invalid deployment:\n- "),
        "{}",
        run.stderr
    );
}

#[test]
fn deploy_file_without_verb_is_plan_and_bare_names_resolve() {
    let sb = Sandbox::new();
    sb.write("work/deployments/mine.org", LOCAL);
    let run = sb.deploy(&["mine"]);
    run.expect_code(0);
    assert!(run.stderr.contains("engine env ("), "{}", run.stderr);
    sb.deploy(&["validate", "mine"]).expect_code(0);
    sb.deploy(&["validate", "mine.org"]).expect_code(0);
    sb.write("work/deployment.org", LOCAL);
    sb.deploy(&["validate"]).expect_code(0);
}

#[test]
fn usage_errors_exit_2() {
    let sb = Sandbox::new();
    for args in [
        vec!["frobnicate", "x.org"],
        vec!["validate", "a.org", "b.org"],
        vec!["validate", "--bogus"],
        vec!["fmt", "x.org"],
        vec!["secrets"],
        vec!["secrets", "set"],
    ] {
        let run = sb.deploy(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
        no_panic(&run);
    }
    let run = sb.deploy(&["frobnicate", "x.org", "--json"]);
    assert_eq!(run.code, 2);
    assert_eq!(run.json()["ok"], false);
}

#[test]
fn help_teaches_the_verbs() {
    let sb = Sandbox::new();
    let run = sb.deploy(&["--help"]);
    run.expect_code(0);
    for verb in [
        "init",
        "validate",
        "plan",
        "apply",
        "verify",
        "status",
        "down",
        "doctor",
        "up-local",
        "connect",
        "secrets",
        "fmt",
        "--migrate",
    ] {
        assert!(run.stdout.contains(verb), "help does not mention {verb}");
    }
}

#[test]
fn bad_input_gets_one_clear_reason_and_never_panics() {
    let sb = Sandbox::new();
    let binary = sb.path().join("work/binary.org");
    std::fs::write(&binary, [0xffu8, 0xfe, 0x00, 0x13, 0x37, b'\n', 0x80]).unwrap();
    let big = sb.path().join("work/big.org");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(50 * 1024 * 1024).unwrap();
    let unreadable = sb.write("work/secret.org", LOCAL);
    std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o000)).unwrap();
    let crlf = sb.write("work/crlf.org", &LOCAL.replace('\n', "\r\n"));
    let bom = sb.write("work/bom.org", &format!("\u{feff}{LOCAL}"));
    let headless = sb.write(
        "work/headless.org",
        ":PROPERTIES:\n:ENGINE_PLACE: local\n:END:\n",
    );
    let dir = sb.path().join("work/adir.org");
    std::fs::create_dir(&dir).unwrap();
    let cases: Vec<(&std::path::Path, i32, &str)> = vec![
        (&binary, 1, "not UTF-8"),
        (&big, 1, "refusing to read more than 1 MiB"),
        (&crlf, 0, "valid — local"),
        (&bom, 0, "valid — local"),
        (&headless, 0, "valid — local"),
        (&dir, 1, "is a directory"),
        (
            std::path::Path::new("/nonexistent/x.org"),
            1,
            "no such file",
        ),
    ];
    for (path, code, reason) in cases {
        let run = sb.deploy(&["validate", path.to_str().unwrap()]);
        no_panic(&run);
        assert_eq!(run.code, code, "{}: {}", path.display(), run.stderr);
        assert!(
            run.stderr.contains(reason),
            "{}: expected {reason:?} in\n{}",
            path.display(),
            run.stderr
        );
        let json = sb.deploy(&["validate", "--json", path.to_str().unwrap()]);
        assert_eq!(json.json()["valid"], code == 0);
    }
    // Root reads anything; only check the permission case where permissions bind.
    let run = sb.deploy(&["validate", unreadable.to_str().unwrap()]);
    no_panic(&run);
}

#[test]
fn init_writes_starters_that_never_clobber() {
    let sb = Sandbox::new();
    let run = sb.deploy(&["init", "local"]);
    run.expect_code(0);
    sb.deploy(&["validate"]).expect_code(0);
    let run = sb.deploy(&["init", "local"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("already exists — pass --force"),
        "{}",
        run.stderr
    );
    sb.deploy(&["init", "cloud", "--force"]).expect_code(0);
    let run = sb.deploy(&["validate", "--json"]);
    run.expect_code(1);
    let messages: Vec<String> = run.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    assert!(
        messages.iter().any(|m| m.starts_with("fill in APP")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("fill in REGION")),
        "{messages:?}"
    );
    let text = std::fs::read_to_string(sb.work().join("deployment.org")).unwrap();
    let filled = text
        .replace("<your-deployment-id>", "mine")
        .replace("<your-app-name>", "my-app")
        .replace("<region, e.g. iad>", "iad");
    std::fs::write(sb.work().join("deployment.org"), filled).unwrap();
    let run = sb.deploy(&["validate"]);
    run.expect_code(0);
    assert!(
        run.stderr.contains("valid — cloud(fly:my-app)"),
        "{}",
        run.stderr
    );
}

#[test]
fn fmt_migrate_moves_keywords_into_the_drawer_keeping_the_config() {
    let sb = Sandbox::new();
    let text = "#+TITLE: old\n#+DEPLOY_PLACE: local\n#+DEPLOY_PORT: 4100\n#+DEPLOY_SECRETS: API_KEY_X\n* engine\n:PROPERTIES:\n:ID: old\n:END:\n";
    let f = sb.write("work/old.org", text);
    let mut sb2 = Sandbox::new();
    sb2.set("API_KEY_X", "canary-fmt-1");
    let before = sb2.deploy(&["plan", "--json", f.to_str().unwrap()]);
    before.expect_code(0);
    assert!(!before.json()["warnings"].as_array().unwrap().is_empty());
    sb2.deploy(&["fmt", "--migrate", f.to_str().unwrap()])
        .expect_code(0);
    let after_text = std::fs::read_to_string(&f).unwrap();
    assert!(!after_text.contains("#+DEPLOY_PLACE"), "{after_text}");
    assert!(
        after_text.contains(":ENGINE_PLACE: local\n:PORT: 4100\n:END:"),
        "{after_text}"
    );
    assert!(
        after_text.contains("#+DEPLOY_SECRETS: API_KEY_X"),
        "secret declarations stay keywords"
    );
    let after = sb2.deploy(&["plan", "--json", f.to_str().unwrap()]);
    after.expect_code(0);
    assert_eq!(before.json()["engine_env"], after.json()["engine_env"]);
    assert_eq!(after.json()["warnings"].as_array().unwrap().len(), 0);
    let again = sb2.deploy(&["fmt", "--migrate", f.to_str().unwrap()]);
    again.expect_code(0);
    assert!(again.stderr.contains("nothing to migrate"));
    // A file of keywords only gets a drawer of its own.
    let g = sb.write("work/kw.org", "#+DEPLOY_PLACE: local\n#+DEPLOY_ID: kw\n");
    sb.deploy(&["fmt", "--migrate", g.to_str().unwrap()])
        .expect_code(0);
    let migrated = std::fs::read_to_string(&g).unwrap();
    assert_eq!(
        migrated,
        "* kw :deployment:\n:PROPERTIES:\n:ENGINE_PLACE: local\n:ID: kw\n:END:\n"
    );
    sb.deploy(&["validate", g.to_str().unwrap()]).expect_code(0);
}

#[test]
fn several_drawers_need_an_id() {
    let sb = Sandbox::new();
    let f = sb.write(
        "work/two.org",
        "* a\n:PROPERTIES:\n:ID: alpha\n:ENGINE_PLACE: local\n:END:\n* b\n:PROPERTIES:\n:ID: beta\n:ENGINE_PLACE: local\n:PORT: 4200\n:END:\n",
    );
    let run = sb.deploy(&["validate", f.to_str().unwrap()]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("pick one with `--id` (`alpha`, `beta`)"),
        "{}",
        run.stderr
    );
    let run = sb.deploy(&["plan", "--json", "--id", "beta", f.to_str().unwrap()]);
    run.expect_code(0);
    assert_eq!(run.json()["properties"]["PORT"], "4200");
    let run = sb.deploy(&["validate", "--id", "gamma", f.to_str().unwrap()]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("no drawer has `:ID: gamma`"),
        "{}",
        run.stderr
    );
}

#[test]
fn no_color_when_asked_and_none_off_a_terminal() {
    let mut sb = Sandbox::new();
    let f = sb.write(
        "work/bad.org",
        "* b\n:PROPERTIES:\n:ENGINE_PLACE: Local\n:END:\n",
    );
    sb.unset("NO_COLOR");
    let run = sb.deploy(&["validate", f.to_str().unwrap()]);
    assert!(
        !run.stderr.contains('\x1b'),
        "stderr is not a terminal: no escapes"
    );
}

/// Runs the kit with its stdout a pipe whose reader is already gone (`… | true` after
/// the reader exited, `| head -c0`): returns the exit code and stderr.
fn with_closed_stdout(sb: &Sandbox, args: &[&str]) -> (i32, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = sb
        .kit(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_stdout_ends_quietly_with_the_works_own_code() {
    let sb = Sandbox::new();
    sb.write("work/t.org", LOCAL);
    for (args, code) in [
        (&["deploy", "--help"][..], 0),
        (&["deploy", "help", "apply"][..], 0),
        (&["deploy", "validate", "--json", "t.org"][..], 0),
        (&["deploy", "plan", "t.org", "--json"][..], 0),
        (&["deploy", "completions", "bash"][..], 0),
        (&["deploy", "--version"][..], 0),
        (&["deploy", "validate", "--json", "missing.org"][..], 1),
        (&["deploy", "aply", "--json"][..], 2),
    ] {
        let (got, stderr) = with_closed_stdout(&sb, args);
        assert_eq!(got, code, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
}

#[test]
fn every_verb_has_its_own_help_and_help_verb_is_the_same() {
    let sb = Sandbox::new();
    for verb in [
        "init", "validate", "plan", "apply", "verify", "status", "logs", "url", "down", "doctor",
        "up-local", "connect", "secrets", "fmt",
    ] {
        let flag = sb.deploy(&[verb, "--help"]);
        flag.expect_code(0);
        assert!(
            flag.stdout
                .starts_with(&format!("cargo xtask deploy {verb}: ")),
            "{verb}: {}",
            flag.stdout
        );
        assert!(flag.stdout.contains("Usage:") && flag.stdout.contains("Example:"));
        assert_eq!(sb.deploy(&["help", verb]).stdout, flag.stdout, "{verb}");
    }
    let json = sb.deploy(&["apply", "--help", "--json"]);
    json.expect_code(0);
    let v = json.json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["verb"], "help");
    assert!(
        v["help"]
            .as_str()
            .unwrap()
            .contains("apply [FILE] [--force]")
    );
}

#[test]
fn a_mistyped_verb_or_flag_gets_a_did_you_mean_and_json_stays_one_object() {
    let sb = Sandbox::new();
    let run = sb.deploy(&["aply", "x.org"]);
    run.expect_code(2);
    assert_eq!(
        run.stderr.trim_end(),
        "error: unknown verb `aply` — did you mean `apply`?"
    );
    for args in [
        &["validate", "--id", "--json"][..],
        &["validate", "--json=1"][..],
        &["--help", "--json"][..],
        &["status", "--forse", "--json"][..],
    ] {
        let run = sb.deploy(args);
        let v: serde_json::Value = serde_json::from_str(run.stdout.trim())
            .unwrap_or_else(|e| panic!("{args:?}: not one JSON object ({e}): {}", run.stdout));
        assert!(v.is_object(), "{args:?}");
        if run.code != 0 {
            assert_eq!(run.code, 2, "{args:?}");
            assert_eq!(v["error"]["kind"], "usage", "{args:?}");
        }
    }
}

#[test]
fn version_and_completions() {
    let sb = Sandbox::new();
    let run = sb.deploy(&["--version"]);
    run.expect_code(0);
    assert!(
        run.stdout.starts_with("cargo xtask deploy "),
        "{}",
        run.stdout
    );
    let bash = sb.deploy(&["completions", "bash"]);
    bash.expect_code(0);
    let file = sb.path().join("c.bash");
    std::fs::write(&file, &bash.stdout).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&file)
        .status()
        .unwrap();
    assert!(check.success(), "bash -n rejects the completion script");
    for verb in ["apply", "validate", "secrets"] {
        assert!(bash.stdout.contains(verb));
    }
    for shell in ["zsh", "fish"] {
        let run = sb.deploy(&["completions", shell]);
        run.expect_code(0);
        assert!(run.stdout.contains("apply"), "{shell}");
    }
    sb.deploy(&["completions", "tcsh"]).expect_code(2);
}
