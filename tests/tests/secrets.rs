//! `deploy secrets set|generate|list|unset`: the store round-trips any value exactly, is
//! private, never prints a value, and loses no write under concurrency.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use wb_tests::{Run, Sandbox, repo_root};

const FILE: &str = "cloud-saas.org";

fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    let text = std::fs::read_to_string(repo_root().join("deployments").join(FILE)).unwrap();
    sb.write(&format!("work/{FILE}"), &text);
    sb
}

fn store(sb: &Sandbox) -> std::collections::BTreeMap<String, String> {
    xtask::state::store::Store::at(&sb.wb_home().join("cloud-saas"))
        .load()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.expose().to_string()))
        .collect()
}

fn set_stdin(sb: &Sandbox, name: &str, bytes: &[u8]) -> Run {
    let mut child = sb
        .kit(&["deploy", "secrets", "set", name, FILE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    Run::from(child.wait_with_output().unwrap())
}

/// Declares more secrets in the sandbox's file (the kit refuses to store a name nothing
/// declares).
fn declare(sb: &Sandbox, names: &[String]) {
    let path = sb.path().join("work").join(FILE);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("#+DEPLOY_SECRETS: {}\n", names.join(" ")));
    std::fs::write(path, text).unwrap();
}

#[test]
fn stdin_values_round_trip_exactly_minus_one_trailing_newline() {
    let sb = sandbox();
    let names = ["PEM_KEY", "TWO_NEWLINES", "NO_NEWLINE", "LEADING", "EMPTY"];
    declare(&sb, &names.map(String::from));
    let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIcnry-pem-A1\n  indented = \"quoted\" 'x'\n-----END PRIVATE KEY-----";
    let cases: &[(&str, String, String)] = &[
        ("PEM_KEY", format!("{pem}\n"), pem.to_string()),
        (
            "TWO_NEWLINES",
            "cnry-two-B2\n\n".into(),
            "cnry-two-B2\n".into(),
        ),
        (
            "NO_NEWLINE",
            "cnry-none-C3 = \"a b\"".into(),
            "cnry-none-C3 = \"a b\"".into(),
        ),
        (
            "LEADING",
            "  \tcnry-lead-D4\r\n".into(),
            "  \tcnry-lead-D4\r".into(),
        ),
    ];
    for (name, input, expected) in cases {
        let run = set_stdin(&sb, name, input.as_bytes());
        run.expect_code(0);
        run.assert_no_canary(&["cnry-", "MC4CAQ"]);
        assert_eq!(store(&sb).get(*name), Some(expected), "{name}");
    }
    // An empty value is refused (empty counts as unset).
    let empty = set_stdin(&sb, "EMPTY", b"\n");
    empty.expect_code(1);
    assert!(
        empty.stderr.contains("secrets unset EMPTY"),
        "{}",
        empty.stderr
    );
    assert!(!store(&sb).contains_key("EMPTY"));
}

#[test]
fn set_list_unset_generate_never_print_a_value() {
    let mut sb = sandbox();
    let inline = "sk=cnry-inline-E5 \"q\" 'r' s";
    let set = sb.deploy(&[
        "secrets",
        "set",
        &format!("STRIPE_API_KEY={inline}"),
        FILE,
        "--json",
    ]);
    set.expect_code(0);
    set.assert_no_canary(&["cnry-inline-E5"]);
    assert_eq!(set.json()["source"], "store");
    assert_eq!(store(&sb)["STRIPE_API_KEY"], inline);

    // The store file: 0600 in a 0700 directory.
    let dir = sb.wb_home().join("cloud-saas");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.join("secrets.env")), 0o600);
    assert_eq!(mode(&dir), 0o700);

    sb.set("WB_S3_KEY", "cnry-env-F6");
    let generated = sb.deploy(&["secrets", "generate", "WB_SIGNING_KEY", FILE, "--json"]);
    generated.expect_code(0);
    let key = store(&sb)["WB_SIGNING_KEY"].clone();
    assert_eq!(key.len(), 64, "32 bytes, hex");
    assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(!generated.stdout.contains(&key) && !generated.stderr.contains(&key));

    // Generating over a stored value is refused; the value stays.
    let again = sb.deploy(&["secrets", "generate", "WB_SIGNING_KEY", FILE]);
    again.expect_code(1);
    assert!(
        again.stderr.contains("secrets unset WB_SIGNING_KEY"),
        "{}",
        again.stderr
    );
    assert_eq!(store(&sb)["WB_SIGNING_KEY"], key);

    let list = sb.deploy(&["secrets", "list", FILE, "--json"]);
    list.expect_code(0);
    list.assert_no_canary(&["cnry-", &key]);
    let v = list.json();
    let source = |name: &str| {
        v["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} listed"))["source"]
            .clone()
    };
    assert_eq!(source("STRIPE_API_KEY"), "store");
    assert_eq!(source("WB_S3_KEY"), "env");
    assert_eq!(source("WB_S3_SECRET"), "unset");
    assert_eq!(source("WB_DATABASE_URL"), "unset");
    assert_eq!(source("WB_PUBLIC_BEARER"), "unset");
    assert_eq!(source("WB_SIGNING_KEY"), "store");
    let human = sb.deploy(&["secrets", "list", FILE]);
    human.expect_code(0);
    human.assert_no_canary(&["cnry-", &key]);
    assert!(human.stderr.contains("STRIPE_API_KEY") && human.stderr.contains("declared"));

    let unset = sb.deploy(&["secrets", "unset", "STRIPE_API_KEY", FILE, "--json"]);
    unset.expect_code(0);
    assert_eq!(unset.json()["removed"], true);
    assert!(!store(&sb).contains_key("STRIPE_API_KEY"));
    let twice = sb.deploy(&["secrets", "unset", "STRIPE_API_KEY", FILE, "--json"]);
    twice.expect_code(0);
    assert_eq!(twice.json()["removed"], false);

    // Nothing else under WB_HOME holds a value.
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        if entry.file_name() != "secrets.env" {
            let text = String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap()).into_owned();
            assert!(
                !text.contains("cnry-") && !text.contains(&key),
                "{}",
                entry.path().display()
            );
        }
    }
}

#[test]
fn names_must_be_upper_snake_case() {
    let sb = sandbox();
    for bad in ["lower=x", "9LIVES=x", "WITH-DASH=x", "É=x"] {
        let run = sb.deploy(&["secrets", "set", bad, FILE]);
        run.expect_code(2);
        assert!(run.stderr.contains("^[A-Z][A-Z0-9_]*$"), "{}", run.stderr);
    }
    sb.deploy(&["secrets", "generate", "bad", FILE])
        .expect_code(2);
    sb.deploy(&["secrets", "unset", "bad", FILE]).expect_code(2);
    assert!(!sb.wb_home().join("cloud-saas/secrets.env").exists());
}

#[test]
fn concurrent_sets_lose_no_write() {
    let sb = sandbox();
    declare(&sb, &(0..16).map(|i| format!("K{i}")).collect::<Vec<_>>());
    let children: Vec<_> = (0..16)
        .map(|i| {
            sb.kit(&["deploy", "secrets", "set", &format!("K{i}=value-{i}"), FILE])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        Run::from(child.wait_with_output().unwrap()).expect_code(0);
    }
    let stored = store(&sb);
    for i in 0..16 {
        assert_eq!(
            stored.get(&format!("K{i}")).map(String::as_str),
            Some(format!("value-{i}").as_str())
        );
    }
}

#[test]
fn the_store_satisfies_the_validator_and_wins_over_the_env() {
    let mut sb = sandbox();
    // cloud-saas needs S3 keys, the DSN and the declared STRIPE_API_KEY.
    let invalid = sb.deploy(&["validate", FILE]);
    invalid.expect_code(1);
    for (name, value) in [
        ("WB_S3_KEY", "k"),
        ("WB_S3_SECRET", "s"),
        ("WB_DATABASE_URL", "postgres://db"),
        ("STRIPE_API_KEY", "from-store"),
    ] {
        sb.deploy(&["secrets", "set", &format!("{name}={value}"), FILE])
            .expect_code(0);
    }
    sb.deploy(&["validate", FILE]).expect_code(0);
    sb.set("STRIPE_API_KEY", "from-env");
    let v = sb.deploy(&["secrets", "list", FILE, "--json"]).json();
    let row = v["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "STRIPE_API_KEY")
        .unwrap()
        .clone();
    assert_eq!(row["source"], "store");
    let set = sb.deploy(&["secrets", "set", "STRIPE_API_KEY=again", FILE]);
    assert!(
        set.stderr.contains("the store's value wins"),
        "{}",
        set.stderr
    );
}

#[test]
fn an_undeclared_name_is_refused_with_the_line_to_add_and_list_shows_every_stored_name() {
    let sb = sandbox();
    let run = sb.deploy(&["secrets", "set", "FOO_BAR=1", FILE]);
    run.expect_code(1);
    assert_eq!(
        run.stderr.trim_end().lines().last().unwrap(),
        "error: cloud-saas.org does not declare `FOO_BAR`, so no apply would ship it — add the line `#+DEPLOY_SECRETS: FOO_BAR` to the file, then run `cargo xtask deploy secrets set FOO_BAR cloud-saas.org` again"
    );
    assert!(!sb.wb_home().join("cloud-saas/secrets.env").exists());
    // A name stored earlier (by hand, or before its declaration was removed) is listed.
    declare(&sb, &["OLD_NAME".to_string()]);
    sb.deploy(&["secrets", "set", "OLD_NAME=x", FILE])
        .expect_code(0);
    let text = std::fs::read_to_string(sb.path().join("work").join(FILE)).unwrap();
    std::fs::write(
        sb.path().join("work").join(FILE),
        text.replace("#+DEPLOY_SECRETS: OLD_NAME\n", ""),
    )
    .unwrap();
    let v = sb.deploy(&["secrets", "list", FILE, "--json"]).json();
    let row = v["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "OLD_NAME")
        .expect("a stored name is listed")
        .clone();
    assert_eq!(row["source"], "store");
    assert_eq!(
        row["about"],
        "stored, but nothing declares it: no apply ships it"
    );
    // `unset` removes any stored name, declared or not.
    sb.deploy(&["secrets", "unset", "OLD_NAME", FILE])
        .expect_code(0);
}

#[test]
fn an_inline_value_is_warned_about_and_stdin_recommended() {
    let sb = sandbox();
    let run = sb.deploy(&["secrets", "set", "STRIPE_API_KEY=cnry-inline-9", FILE]);
    run.expect_code(0);
    assert!(
        run.stderr.contains("warning: the value of STRIPE_API_KEY was on the command line, where `ps` and shell history see it — next time pipe it in: `cargo xtask deploy secrets set STRIPE_API_KEY cloud-saas.org < file`"),
        "{}",
        run.stderr
    );
    run.assert_no_canary(&["cnry-inline-9"]);
}
