//! Recipe tests: the spine (`recipes/_recipe.sh`) and the Fly recipe
//! (`recipes/fly/bootstrap.sh`) driven through real bash against the stateful
//! flyctl double (`tests/doubles/bin/fly`). No kit is involved: every test builds
//! the sealed environment the kit would (`env_clear` plus the allowlist), with
//! `HOME` a temp dir holding a logged-in flyctl config and `PATH` the double's
//! directory then `/usr/bin:/bin`.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::Value;
use wb_tests::{Run, doubles_dir, repo_root, require_tool};

const APP: &str = "wb-recipe-test";
const REGION: &str = "ams";
const IMAGE: &str = "ghcr.io/example/engine:1.2.3";
const INSTALL_URL: &str = "https://fly.io/docs/flyctl/install/";
const ACTIONS: [&str; 6] = ["up", "secrets", "down", "status", "logs", "url"];
const UP_FRESH: [&str; 7] = [
    "version",
    "status",
    "apps create",
    "secrets import",
    "volumes list",
    "volumes create",
    "deploy",
];

/// Engine names that join the engine env only when set and non-empty, in order.
const OPTIONAL: [&str; 16] = [
    "WB_APP_NAME",
    "WB_REGION",
    "WB_PROFILE_DIR",
    "WB_TENANCY_MODE",
    "WB_STORAGE",
    "WB_S3_ENDPOINT",
    "WB_S3_BUCKET",
    "WB_S3_REGION",
    "WB_AUTH",
    "WB_AUTH_ISSUER",
    "WB_JWKS_URL",
    "WB_S3_KEY",
    "WB_S3_SECRET",
    "WB_DATABASE_URL",
    "WB_PUBLIC_BEARER",
    "WB_SIGNING_KEY",
];

const FLY_TOML: &str = r#"app = "wb-recipe-test"
primary_region = "ams"

[http_service]
internal_port = 4000
force_https = true

[mounts]
source = "wbdata"
destination = "/data"
"#;

// ------------------------------------------------------------------ support ---

fn bash() -> PathBuf {
    ["/bin/bash", "/usr/bin/bash"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("bash at /bin/bash or /usr/bin/bash")
}

fn recipes_dir() -> PathBuf {
    repo_root().join("recipes")
}

/// The PATH the recipe runs with: the double first, then the system.
fn double_path() -> String {
    format!("{}:/usr/bin:/bin", doubles_dir().display())
}

/// The double is a Python 3 script (stdlib only, 3.8 or later); with the sealed
/// PATH it needs `/usr/bin/env python3` to resolve in /usr/bin or /bin. Missing
/// python3 fails under `WB_REQUIRE_TOOLS=1` and skips loudly otherwise.
fn double_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let found = Command::new("/usr/bin/env")
            .args(["python3", "-c", "import sys; sys.exit(sys.version_info < (3, 8))"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            if std::env::var("WB_REQUIRE_TOOLS").as_deref() == Ok("1") {
                panic!("python3 (>= 3.8) is required in /usr/bin or /bin for the flyctl double");
            }
            eprintln!(
                "SKIPPED: python3 (>= 3.8) is not in /usr/bin or /bin — the flyctl double needs it; \
                 CI sets WB_REQUIRE_TOOLS=1 to make this a failure"
            );
        }
        found
    })
}

/// ~/.fly/config.yml as `flyctl auth login` leaves it: the token and `last_login`
/// (internal/config/config.go), here `days_ago` days back. flyctl ignores a file token
/// whose last_login is missing or older than 30 days (command.go RequireSession).
fn config_yml(days_ago: u64) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - days_ago * 86_400;
    format!(
        "access_token: fo1_test_token\nlast_login: {}\n",
        xtask::state::releases::rfc3339(std::time::Duration::from_secs(secs))
    )
}

fn random_token() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    format!("{:016x}", h.finish())
}

/// SHA-256 of `data`, hex: the digests the double stores (with `sha2`, already in the
/// kit's tree).
fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The engine env by the documented rules, computed here independently of the
/// spine: the five always-present, the optional ones when non-empty, then the
/// declared secrets not already present.
fn engine_env(inputs: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let get = |name: &str| inputs.get(name).cloned().unwrap_or_default();
    let or = |name: &str, default: &str| {
        let v = get(name);
        if v.is_empty() { default.to_string() } else { v }
    };
    let data = or("WB_DATA", "/data");
    let mut env = vec![
        ("WB_WEB".to_string(), "1".to_string()),
        ("PORT".to_string(), or("WB_PORT", "4000")),
        ("WB_DATA".to_string(), data.clone()),
        ("WB_EMBED".to_string(), or("WB_EMBED", "local")),
        (
            "WB_REGISTRY".to_string(),
            or("WB_REGISTRY", &format!("{data}/registry.db")),
        ),
    ];
    for name in OPTIONAL {
        let v = get(name);
        if !v.is_empty() {
            env.push((name.to_string(), v));
        }
    }
    for name in get("WB_SECRET_KEYS").split_whitespace() {
        if !env.iter().any(|(n, _)| n == name) {
            env.push((name.to_string(), get(name)));
        }
    }
    env
}

/// One sealed recipe environment with its own HOME (and so its own double state).
struct Fixture {
    dir: tempfile::TempDir,
    inputs: BTreeMap<String, String>,
    engine_keys: Option<String>,
    path: String,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("wb-recipes-")
            .tempdir()
            .expect("a temp dir");
        let mut fx = Fixture {
            dir,
            inputs: BTreeMap::new(),
            engine_keys: None,
            path: double_path(),
        };
        fx.write("home/.fly/config.yml", &config_yml(1));
        fx.write("kit/fly.toml", FLY_TOML);
        for (k, v) in [
            ("WB_IMAGE", IMAGE),
            ("WB_APP_NAME", APP),
            ("WB_PORT", "4000"),
            ("WB_REGION", REGION),
            ("WB_TENANCY_MODE", "single"),
            ("WB_STORAGE", "local"),
            ("WB_AUTH", "none"),
            ("WB_SECRET_KEYS", ""),
        ] {
            fx.set(k, v);
        }
        fx
    }

    fn set(&mut self, name: &str, value: &str) -> &mut Fixture {
        self.inputs.insert(name.to_string(), value.to_string());
        self
    }

    fn unset(&mut self, name: &str) -> &mut Fixture {
        self.inputs.remove(name);
        self
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn home(&self) -> PathBuf {
        self.path("home")
    }

    fn fly_toml(&self) -> PathBuf {
        self.path("kit/fly.toml")
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn engine(&self) -> Vec<(String, String)> {
        engine_env(&self.inputs)
    }

    /// The command the kit would run: `bash <root>/fly/bootstrap.sh`, sealed.
    fn command(&self, action: Option<&str>) -> Command {
        let mut cmd = Command::new(bash());
        cmd.arg(recipes_dir().join("fly/bootstrap.sh"))
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", self.home())
            .env("WB_PROVIDERS_DIR", recipes_dir())
            .env("WB_FLY_TOML", self.fly_toml())
            .stdin(Stdio::null());
        if let Some(action) = action {
            cmd.env("WB_RECIPE_ACTION", action);
        }
        cmd.envs(&self.inputs);
        let engine = self.engine();
        for (name, value) in &engine {
            cmd.env(name, value);
        }
        let keys = engine
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        cmd.env("WB_ENGINE_KEYS", self.engine_keys.clone().unwrap_or(keys));
        cmd
    }

    fn run(&self, action: &str) -> Run {
        Run::from(self.command(Some(action)).output().expect("bash runs"))
    }

    /// Runs the double directly (as a test would poke the "platform").
    fn fly(&self, args: &[&str], stdin: &[u8]) -> Run {
        let mut child = Command::new(doubles_dir().join("fly"))
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", double_path())
            .env("HOME", self.home())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the double runs");
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        Run::from(child.wait_with_output().unwrap())
    }

    fn double_file(&self, name: &str) -> PathBuf {
        self.home().join(".fly-double").join(name)
    }

    fn fail_next(&self, rule: &str) {
        std::fs::create_dir_all(self.double_file("")).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.double_file("fail"))
            .unwrap();
        writeln!(f, "{rule}").unwrap();
    }

    fn calls_text(&self) -> String {
        std::fs::read_to_string(self.double_file("calls.log")).unwrap_or_default()
    }

    fn calls(&self) -> Vec<Value> {
        self.calls_text()
            .lines()
            .map(|l| serde_json::from_str(l).expect("calls.log holds JSON lines"))
            .collect()
    }

    /// The flyctl subcommands invoked so far (`"apps create"`, `"deploy"`, ...).
    fn commands(&self) -> Vec<String> {
        self.calls()
            .iter()
            .map(|c| c["command"].as_str().unwrap_or("?").to_string())
            .collect()
    }

    fn argv_of(&self, command: &str) -> Vec<String> {
        let calls = self.calls();
        let call = calls
            .iter()
            .rev()
            .find(|c| c["command"] == command)
            .unwrap_or_else(|| panic!("no {command} call in {}", self.calls_text()));
        call["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    }

    fn state(&self) -> Value {
        let text = std::fs::read_to_string(self.double_file("state.json")).unwrap_or_default();
        if text.is_empty() {
            return serde_json::json!({"apps": {}});
        }
        serde_json::from_str(&text).expect("state.json is JSON")
    }

    /// Writes `key = value` into the first volume's `x_data`: the double's stand-in
    /// for bytes on the disk, to prove that a volume survives `down`.
    fn mark_volume(&self, key: &str, value: &str) {
        let mut state = self.state();
        state["apps"][APP]["volumes"][0]["x_data"][key] = Value::String(value.into());
        std::fs::write(
            self.double_file("state.json"),
            serde_json::to_string_pretty(&state).unwrap(),
        )
        .unwrap();
    }

    fn app_state(&self) -> Value {
        let state = self.state();
        let app = &state["apps"][APP];
        assert!(
            app.is_object(),
            "app {APP} is not in the double's state: {state:#}"
        );
        app.clone()
    }
}

fn contains_pair(argv: &[String], flag: &str, value: &str) -> bool {
    argv.windows(2).any(|w| w[0] == flag && w[1] == value)
}

fn recipe_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            recipe_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "sh") {
            out.push(path);
        }
    }
}

// -------------------------------------------------------------------- tests ---

#[test]
fn shellcheck_is_clean_on_every_recipe() {
    let mut files = Vec::new();
    recipe_files(&recipes_dir(), &mut files);
    files.sort();
    for expected in ["_recipe.sh", "fly/bootstrap.sh"] {
        assert!(
            files.contains(&recipes_dir().join(expected)),
            "recipes/{expected} is missing from {files:?}"
        );
    }
    if !require_tool("shellcheck") {
        return;
    }
    for file in &files {
        let out = Command::new("shellcheck")
            .arg("-x")
            .arg(file)
            .current_dir(repo_root())
            .output()
            .expect("shellcheck runs");
        assert!(
            out.status.success(),
            "shellcheck -x {} reported:\n{}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn recipes_never_swallow_failures_and_fly_declares_its_passthrough() {
    let mut files = Vec::new();
    recipe_files(&recipes_dir(), &mut files);
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split('#').next().unwrap_or("");
            assert!(
                !code.contains("|| true") && !code.contains("|| :"),
                "{}:{} swallows a failure: {line}",
                file.display(),
                n + 1
            );
        }
    }
    let fly = std::fs::read_to_string(recipes_dir().join("fly/bootstrap.sh")).unwrap();
    let header: Vec<&str> = fly
        .lines()
        .filter(|l| l.starts_with("# wb-passthrough:"))
        .collect();
    assert_eq!(
        header,
        [
            "# wb-passthrough: FLY_API_TOKEN FLY_ACCESS_TOKEN FLY_ORG WB_FLY_CONFIG WB_FLY_DOCKERFILE"
        ],
        "the Fly recipe's passthrough header"
    );
}

#[test]
fn an_unknown_action_exits_2_naming_the_six() {
    if !double_ready() {
        return;
    }
    let fx = Fixture::new();
    for action in [Some("deploy"), Some(""), Some("UP"), None] {
        let run = Run::from(fx.command(action).output().unwrap());
        run.expect_code(2);
        for name in ACTIONS {
            assert!(
                run.stderr.contains(name),
                "{action:?}: stderr does not name {name}:\n{}",
                run.stderr
            );
        }
        assert!(run.stdout.is_empty(), "{action:?}: stdout: {}", run.stdout);
    }
    assert_eq!(
        fx.calls_text(),
        "",
        "an unknown action must not call flyctl"
    );
}

#[test]
fn up_on_a_fresh_account_creates_stages_and_deploys_in_order() {
    if !double_ready() {
        return;
    }
    let fx = Fixture::new();
    let run = fx.run("up");
    run.expect_code(0);
    assert_eq!(run.stdout, format!("url: https://{APP}.fly.dev\n"));
    assert_eq!(fx.commands(), UP_FRESH);

    assert_eq!(fx.argv_of("status"), ["status", "-a", APP]);
    assert_eq!(fx.argv_of("apps create"), ["apps", "create", APP]);
    assert_eq!(
        fx.argv_of("secrets import"),
        ["secrets", "import", "--stage", "-a", APP]
    );
    assert_eq!(
        fx.argv_of("volumes list"),
        ["volumes", "list", "-a", APP, "--json"]
    );
    let create = fx.argv_of("volumes create");
    assert_eq!(&create[..3], ["volumes", "create", "wbdata"]);
    for (flag, value) in [("--size", "1"), ("--region", REGION), ("-a", APP)] {
        assert!(
            contains_pair(&create, flag, value),
            "{flag} {value}: {create:?}"
        );
    }
    assert!(create.contains(&"--yes".to_string()), "{create:?}");
    let deploy = fx.argv_of("deploy");
    let toml = fx.fly_toml().display().to_string();
    for (flag, value) in [
        ("-a", APP),
        ("--config", toml.as_str()),
        ("--image", IMAGE),
        ("--primary-region", REGION),
    ] {
        assert!(
            contains_pair(&deploy, flag, value),
            "{flag} {value}: {deploy:?}"
        );
    }
    for flag in ["--ha=false", "--yes"] {
        assert!(deploy.contains(&flag.to_string()), "{flag}: {deploy:?}");
    }
    assert!(!deploy.contains(&"--update-only".to_string()), "{deploy:?}");
    // `fly deploy` has had no --region since v0.2.47: the double rejects it as flyctl does.
    assert!(
        !deploy.iter().any(|a| a == "--region" || a == "-r"),
        "{deploy:?}"
    );

    let app = fx.app_state();
    let volumes = app["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    assert_eq!(volumes[0]["name"], "wbdata");
    assert_eq!(volumes[0]["region"], REGION);
    assert_eq!(volumes[0]["size_gb"], 1);
    let machines = app["machines"].as_array().unwrap();
    assert_eq!(machines.len(), 1, "{machines:?}");
    assert_eq!(volumes[0]["attached_machine_id"], machines[0]["id"]);
    let releases = app["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 1);
    assert_eq!(releases[0]["image"], IMAGE);
    assert_eq!(machines[0]["region"], REGION);
    assert_eq!(
        releases[0]["config_sha256"],
        sha256_hex(FLY_TOML.as_bytes()).as_str()
    );
    let secrets = app["secrets"].as_object().unwrap();
    let names: Vec<&String> = secrets.keys().collect();
    let mut expected: Vec<String> = fx.engine().into_iter().map(|(n, _)| n).collect();
    expected.sort();
    assert_eq!(names, expected.iter().collect::<Vec<_>>());
    for (name, meta) in secrets {
        assert_eq!(meta["status"], "deployed", "{name}");
    }
}

#[test]
fn up_again_creates_nothing() {
    if !double_ready() {
        return;
    }
    let fx = Fixture::new();
    fx.run("up").expect_code(0);
    let first = fx.commands().len();
    let run = fx.run("up");
    run.expect_code(0);
    assert_eq!(run.stdout, format!("url: https://{APP}.fly.dev\n"));
    assert_eq!(
        fx.commands()[first..],
        [
            "version",
            "status",
            "secrets import",
            "volumes list",
            "deploy"
        ]
    );
    let app = fx.app_state();
    assert_eq!(app["volumes"].as_array().unwrap().len(), 1);
    assert_eq!(app["machines"].as_array().unwrap().len(), 1);
    assert_eq!(app["releases"].as_array().unwrap().len(), 2);
}

#[test]
fn secrets_stages_without_deploying() {
    if !double_ready() {
        return;
    }
    let fx = Fixture::new();
    let run = fx.run("secrets");
    run.expect_code(0);
    assert_eq!(run.stdout, "", "secrets prints nothing on stdout");
    assert_eq!(
        fx.commands(),
        ["version", "status", "apps create", "secrets import"]
    );
    assert!(
        fx.argv_of("secrets import")
            .contains(&"--stage".to_string())
    );
    let app = fx.app_state();
    assert_eq!(app["releases"].as_array().unwrap().len(), 0);
    assert_eq!(app["machines"].as_array().unwrap().len(), 0);
    let secrets = app["secrets"].as_object().unwrap();
    assert_eq!(secrets.len(), fx.engine().len());
    for (name, meta) in secrets {
        assert_eq!(meta["status"], "staged", "{name}");
    }
}

#[test]
fn the_engine_env_follows_the_rules_in_the_kits_order() {
    if !double_ready() {
        return;
    }
    // Three runs: every other optional name set (the rest present but empty),
    // then the other half, then all of them (WB_APP_NAME and WB_REGION, the
    // first two, are always set by the fixture).
    for parity in [0, 1, 2] {
        let mut fx = Fixture::new();
        let mut set = Vec::new();
        for (i, name) in OPTIONAL.iter().enumerate().skip(2) {
            let value = if parity == 2 || i % 2 == parity {
                format!("value-{i}")
            } else {
                String::new()
            };
            if !value.is_empty() {
                set.push(*name);
            }
            fx.set(name, &value);
        }
        fx.set("WB_PORT", "8080").set("WB_DATA", "/srv/wb");
        fx.set("EXTRA_ONE", "1").set("EXTRA_TWO", "2");
        // Declared secrets: two new ones, and two names already in the env.
        fx.set("WB_SECRET_KEYS", "EXTRA_TWO WB_AUTH EXTRA_ONE WB_S3_KEY");
        let run = fx.run("secrets");
        run.expect_code(0);

        let expected: Vec<String> = fx.engine().into_iter().map(|(n, _)| n).collect();
        for name in &OPTIONAL[2..] {
            assert_eq!(
                expected.iter().any(|n| n == name),
                set.contains(name) || *name == "WB_AUTH" || *name == "WB_S3_KEY",
                "the test's own model, {name}"
            );
        }
        let app = fx.app_state();
        let imported: Vec<&str> = app["last_import"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            imported, expected,
            "names and order of the imported engine env"
        );
        for (name, value) in [
            ("WB_WEB", "1"),
            ("PORT", "8080"),
            ("WB_DATA", "/srv/wb"),
            ("WB_EMBED", "local"),
            ("WB_REGISTRY", "/srv/wb/registry.db"),
            ("EXTRA_ONE", "1"),
        ] {
            assert_eq!(
                app["secrets"][name]["digest"],
                sha256_hex(value.as_bytes()).as_str(),
                "{name}"
            );
        }
    }
}

#[test]
fn secret_values_never_reach_argv_or_output_yet_round_trip_exactly() {
    if !double_ready() {
        return;
    }
    let canary = format!("canary-{}", random_token());
    let mut fx = Fixture::new();
    let values = [
        (
            "WB_S3_SECRET",
            format!("{canary}-s3 = \"double\" 'single'  two  spaces\nsecond = line \"\"\" end"),
        ),
        (
            "WB_SIGNING_KEY",
            format!(
                "-----BEGIN PRIVATE KEY-----\nMIIEv{canary}QIBADANBgkqhkiG9w0BAQEFAASC\n# not a comment\n\n-----END PRIVATE KEY-----\n"
            ),
        ),
        (
            "WB_DATABASE_URL",
            format!("postgres://user:p%40ss={canary}@db:5432/wb?sslmode=require&x=\"y\""),
        ),
        (
            "API_TOKEN",
            format!("   {canary} leading spaces and a trailing one "),
        ),
        ("QUOTED_END", format!("{canary} ends with a quote\"")),
        ("QUOTED_START", format!("\"{canary} starts with a quote")),
        ("WRAPPED", format!("\"{canary} fully quoted\"")),
        ("UNICODE", format!("ünïcödé € {canary} ✓")),
        ("TABS", format!("\t{canary}\ttab\t")),
    ];
    let mut declared = Vec::new();
    for (name, value) in &values {
        fx.set(name, value);
        declared.push(*name);
    }
    fx.set("WB_SECRET_KEYS", &declared.join(" "));

    let run = fx.run("up");
    run.expect_code(0);
    run.assert_no_canary(&[canary.as_str()]);
    let calls = fx.calls_text();
    assert!(!calls.is_empty());
    assert!(!calls.contains(&canary), "a secret reached argv:\n{calls}");
    let state_text = std::fs::read_to_string(fx.double_file("state.json")).unwrap();
    assert!(!state_text.contains(&canary), "the double stored a value");

    let app = fx.app_state();
    let engine = fx.engine();
    assert_eq!(app["secrets"].as_object().unwrap().len(), engine.len());
    for (name, value) in &engine {
        assert_eq!(
            app["secrets"][name]["digest"],
            sha256_hex(value.as_bytes()).as_str(),
            "{name} did not round-trip through flyctl secrets import"
        );
    }
    for (name, _) in &values {
        assert!(
            engine.iter().any(|(n, _)| n == name),
            "{name} not in the engine env"
        );
    }
}

#[test]
fn a_failing_deploy_exits_with_its_code_and_prints_no_url() {
    if !double_ready() {
        return;
    }
    let fx = Fixture::new();
    fx.fail_next("deploy 3");
    let run = fx.run("up");
    run.expect_code(3);
    assert_eq!(run.stdout, "", "no url after a failed deploy");
    assert!(
        run.stderr.contains("provider_deploy_image failed (exit 3)"),
        "{}",
        run.stderr
    );
    assert_eq!(fx.commands(), UP_FRESH);
    assert_eq!(fx.app_state()["releases"].as_array().unwrap().len(), 0);
}

#[test]
fn a_failing_step_stops_the_later_hooks() {
    if !double_ready() {
        return;
    }
    let fx = Fixture::new();
    fx.fail_next("volumes create 4");
    let run = fx.run("up");
    run.expect_code(4);
    assert_eq!(fx.commands(), UP_FRESH[..6]);
    assert!(
        run.stderr
            .contains("provider_attach_volume failed (exit 4)"),
        "{}",
        run.stderr
    );

    let fx = Fixture::new();
    fx.fail_next("secrets import 5");
    let run = fx.run("up");
    run.expect_code(5);
    assert_eq!(fx.commands(), UP_FRESH[..4]);
    assert_eq!(run.stdout, "");
}

#[test]
fn without_flyctl_on_path_the_recipe_points_at_the_installer() {
    let mut fx = Fixture::new();
    std::fs::create_dir_all(fx.path("empty-bin")).unwrap();
    fx.path = fx.path("empty-bin").display().to_string();
    for action in ["up", "status"] {
        let run = fx.run(action);
        run.expect_code(1);
        assert!(run.stderr.contains(INSTALL_URL), "{}", run.stderr);
        assert!(run.stdout.is_empty());
    }
    assert!(!fx.double_file("calls.log").exists());
}

#[test]
fn not_logged_in_fails_without_attempting_a_create() {
    if !double_ready() {
        return;
    }
    let fx = Fixture::new();
    std::fs::remove_file(fx.home().join(".fly/config.yml")).unwrap();
    let run = fx.run("up");
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("no access token available. Please login with 'flyctl auth login'"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("flyctl is not logged in"),
        "{}",
        run.stderr
    );
    assert_eq!(fx.commands(), ["version", "status"]);
    assert!(fx.state()["apps"].as_object().unwrap().is_empty());

    // flyctl ignores a config.yml token whose last_login is missing or older than 30
    // days when it cannot prompt (command.go RequireSession, TokenTimeout): the recipe
    // says "not logged in", never "the app is missing".
    for config in ["access_token: fo1_test_token\n".to_string(), config_yml(31)] {
        let fx = Fixture::new();
        fx.write("home/.fly/config.yml", &config);
        let run = fx.run("up");
        run.expect_code(1);
        assert!(
            run.stderr.contains("no access token available"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("not logged in"), "{}", run.stderr);
        assert_eq!(fx.commands(), ["version", "status"]);
        assert!(fx.state()["apps"].as_object().unwrap().is_empty());
    }
    // A token from the environment skips the session-age check.
    let mut fx = Fixture::new();
    fx.write("home/.fly/config.yml", "access_token: old\n");
    fx.set("FLY_API_TOKEN", "fo1_from_the_environment");
    fx.run("up").expect_code(0);
}

#[test]
fn a_passed_through_token_logs_in() {
    if !double_ready() {
        return;
    }
    let mut fx = Fixture::new();
    std::fs::remove_file(fx.home().join(".fly/config.yml")).unwrap();
    fx.set("FLY_API_TOKEN", "fo1_from_the_environment");
    fx.run("up").expect_code(0);
    assert_eq!(fx.commands(), UP_FRESH);
    assert!(!fx.calls_text().contains("fo1_from_the_environment"));
}

#[test]
fn down_keeps_app_volume_and_secrets_and_up_brings_the_same_volume_back() {
    if !double_ready() {
        return;
    }
    let mut fx = Fixture::new();
    fx.set("KEPT_SECRET", "kept-value")
        .set("WB_SECRET_KEYS", "KEPT_SECRET");
    fx.run("up").expect_code(0);
    let volume = fx.app_state()["volumes"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Workbook data on the volume: the double keeps a marker in the volume's state.
    fx.mark_volume("registry.db", "workbook-42");

    let before = fx.commands().len();
    let run = fx.run("down");
    run.expect_code(0);
    assert_eq!(
        fx.commands()[before..],
        ["status", "scale count", "volumes list"]
    );
    assert_eq!(
        fx.argv_of("scale count"),
        ["scale", "count", "0", "-a", APP, "--yes"]
    );
    assert!(
        run.stdout
            .contains(&format!("destroyed: the machines of app {APP}")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("kept: app {APP} and its secrets")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("kept: volume wbdata ({volume})")),
        "{}",
        run.stdout
    );
    let app = fx.app_state();
    assert_eq!(app["machines"].as_array().unwrap().len(), 0);
    assert_eq!(app["volumes"].as_array().unwrap().len(), 1);
    assert_eq!(app["volumes"][0]["attached_machine_id"], Value::Null);
    assert_eq!(
        app["secrets"]["KEPT_SECRET"]["digest"],
        sha256_hex(b"kept-value").as_str()
    );

    // down again: nothing left to stop, still succeeds and still reports.
    let run = fx.run("down");
    run.expect_code(0);
    assert!(run.stdout.contains("kept: volume wbdata"), "{}", run.stdout);

    // up after down: a new Machine on the same volume, with the data on it.
    let before = fx.commands().len();
    fx.run("up").expect_code(0);
    assert!(
        !fx.commands()[before..]
            .iter()
            .any(|c| c == "volumes create"),
        "{:?}",
        fx.commands()
    );
    let app = fx.app_state();
    let volumes = app["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    assert_eq!(volumes[0]["id"], volume.as_str());
    assert_eq!(volumes[0]["x_data"]["registry.db"], "workbook-42");
    let machines = app["machines"].as_array().unwrap();
    assert_eq!(machines.len(), 1);
    assert_eq!(volumes[0]["attached_machine_id"], machines[0]["id"]);
    assert_eq!(machines[0]["volume"], volume.as_str());
}

#[test]
fn down_with_purge_destroys_the_app_and_is_idempotent() {
    if !double_ready() {
        return;
    }
    let mut fx = Fixture::new();
    fx.run("up").expect_code(0);
    fx.set("WB_PURGE", "1");
    let before = fx.commands().len();
    let run = fx.run("down");
    run.expect_code(0);
    assert_eq!(fx.commands()[before..], ["status", "apps destroy"]);
    assert_eq!(
        fx.argv_of("apps destroy"),
        ["apps", "destroy", APP, "--yes"]
    );
    assert!(
        run.stdout.contains(&format!("destroyed: app {APP}")),
        "{}",
        run.stdout
    );
    assert!(fx.state()["apps"].as_object().unwrap().is_empty());

    let before = fx.commands().len();
    let run = fx.run("down");
    run.expect_code(0);
    assert_eq!(fx.commands()[before..], ["status"]);
    assert!(run.stdout.contains("kept: nothing"), "{}", run.stdout);

    fx.set("WB_PURGE", "yes");
    let run = fx.run("down");
    run.expect_code(1);
    assert!(
        run.stderr.contains("WB_PURGE must be 1 or 0"),
        "{}",
        run.stderr
    );
}

#[test]
fn down_on_an_app_never_deployed_keeps_it() {
    if !double_ready() {
        return;
    }
    let fx = Fixture::new();
    fx.run("secrets").expect_code(0);
    let run = fx.run("down");
    run.expect_code(0);
    assert!(run.stderr.contains("never deployed"), "{}", run.stderr);
    assert!(run.stdout.contains("kept: app"), "{}", run.stdout);
    assert!(!fx.state()["apps"].as_object().unwrap().is_empty());
}

#[test]
fn status_logs_and_url_read_without_changing_anything() {
    if !double_ready() {
        return;
    }
    let fx = Fixture::new();
    let run = fx.run("status");
    run.expect_code(0);
    assert_eq!(
        run.stdout,
        "state: {\"present\": false, \"image\": null, \"instances\": 0, \"regions\": []}\n"
    );

    fx.run("up").expect_code(0);
    let state = fx.state();
    let before = fx.commands().len();

    let run = fx.run("status");
    run.expect_code(0);
    assert!(
        run.stdout.contains(&format!("Hostname = {APP}.fly.dev")),
        "{}",
        run.stdout
    );
    let seen = xtask::providers::state_line::parse(&run.stdout)
        .unwrap()
        .expect("a state: line");
    assert!(seen.present && seen.instances == 1, "{seen:?}");
    assert_eq!(seen.regions, [REGION]);
    assert_eq!(fx.argv_of("status"), ["status", "-a", APP, "--json"]);

    let run = fx.run("logs");
    run.expect_code(0);
    assert_eq!(fx.argv_of("logs"), ["logs", "-a", APP, "--no-tail"]);
    let machine = fx.app_state()["machines"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(run.stdout.contains(&machine), "{}", run.stdout);

    let run = fx.run("url");
    run.expect_code(0);
    assert_eq!(run.stdout, format!("url: https://{APP}.fly.dev\n"));

    assert_eq!(
        fx.commands()[before..],
        ["status", "status", "status", "logs"]
    );
    assert!(fx.calls()[before..].iter().all(|c| c["mutating"] == false));
    assert_eq!(fx.state(), state, "a read-only action changed the platform");
}

#[test]
fn logs_on_an_app_without_entries_stop_at_the_timeout() {
    if !double_ready() {
        return;
    }
    // flyctl's `logs --no-tail` returns only after a non-empty batch (logs/polling.go):
    // on an app that never ran it polls for ever, and so does the double.
    let mut fx = Fixture::new();
    fx.run("secrets").expect_code(0);
    fx.set("WB_FLY_LOGS_TIMEOUT", "2");
    let started = std::time::Instant::now();
    let run = fx.run("logs");
    run.expect_code(0);
    let took = started.elapsed();
    assert!(took >= std::time::Duration::from_secs(2), "{took:?}");
    assert!(took < std::time::Duration::from_secs(15), "{took:?}");
    assert!(
        run.stderr.contains("no log entries within 2s"),
        "{}",
        run.stderr
    );
    let logs: Vec<Value> = fx
        .calls()
        .into_iter()
        .filter(|c| c["command"] == "logs")
        .collect();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0]["exit"], 143, "stopped by SIGTERM");

    fx.set("WB_FLY_LOGS_TIMEOUT", "soon");
    let run = fx.run("logs");
    run.expect_code(1);
    assert!(run.stderr.contains("WB_FLY_LOGS_TIMEOUT"), "{}", run.stderr);
}

#[test]
fn an_old_flyctl_is_refused_before_anything_is_created() {
    if !double_ready() {
        return;
    }
    let fx = Fixture::new();
    fx.write("home/.fly-double/version", "0.4.13\n");
    let run = fx.run("up");
    run.expect_code(1);
    assert!(
        run.stderr.contains("0.4.13 is older than 0.4.14"),
        "{}",
        run.stderr
    );
    assert_eq!(fx.commands(), ["version"]);
    fx.write("home/.fly-double/version", "0.4.14\n");
    fx.run("up").expect_code(0);
}

#[test]
fn engine_keys_that_disagree_with_the_spine_stop_the_run() {
    if !double_ready() {
        return;
    }
    let mut fx = Fixture::new();
    let names: Vec<String> = fx.engine().into_iter().map(|(n, _)| n).collect();

    fx.engine_keys = Some(format!("{} WB_SOMETHING_NEW", names.join(" ")));
    let run = fx.run("up");
    run.expect_code(1);
    assert!(run.stderr.contains("disagree"), "{}", run.stderr);
    assert!(run.stderr.contains("WB_SOMETHING_NEW"), "{}", run.stderr);

    fx.engine_keys = Some(names[..names.len() - 1].join(" "));
    let run = fx.run("secrets");
    run.expect_code(1);
    assert!(run.stderr.contains(names.last().unwrap()), "{}", run.stderr);
    assert_eq!(fx.calls_text(), "", "flyctl ran despite the disagreement");

    // The check is on the set of names: the same names in another order pass.
    let mut reversed = names.clone();
    reversed.reverse();
    fx.engine_keys = Some(reversed.join(" "));
    fx.run("secrets").expect_code(0);
}

#[test]
fn a_missing_image_or_undeclared_secret_value_stops_before_flyctl() {
    if !double_ready() {
        return;
    }
    let mut fx = Fixture::new();
    fx.unset("WB_IMAGE");
    let run = fx.run("up");
    run.expect_code(1);
    assert!(run.stderr.contains("WB_IMAGE"), "{}", run.stderr);

    let mut fx2 = Fixture::new();
    fx2.set("WB_SECRET_KEYS", "NEVER_SET");
    let mut cmd = fx2.command(Some("up"));
    cmd.env_remove("NEVER_SET");
    let run = Run::from(cmd.output().unwrap());
    run.expect_code(1);
    assert!(run.stderr.contains("NEVER_SET"), "{}", run.stderr);

    assert_eq!(fx.calls_text(), "");
    assert_eq!(fx2.calls_text(), "");
}

#[test]
fn values_flyctl_cannot_carry_are_refused_by_name_before_anything_is_created() {
    if !double_ready() {
        return;
    }
    let canary = format!("canary-{}", random_token());
    for value in [
        // A line ending in CR (import drops it) with whitespace at an end (set trims it).
        format!("{canary}\r\nwindows line\n"),
        // A middle line ending in """ (ends the value early) and a trailing newline.
        format!("first\n{canary} ends early\"\"\"\nlast\n"),
        // A first line cut at '#' after an odd number of '"', and a leading space.
        format!(" \"{canary}#x\nsecond"),
        // Longer than import's 64 KiB line and set's 64 KiB of stdin.
        "x".repeat(70_000),
    ] {
        let mut fx = Fixture::new();
        fx.set("BAD_SECRET", &value)
            .set("WB_SECRET_KEYS", "BAD_SECRET");
        let run = fx.run("up");
        run.expect_code(1);
        assert!(run.stderr.contains("BAD_SECRET"), "{}", run.stderr);
        assert!(
            run.stderr.contains("nothing was sent to Fly"),
            "{}",
            run.stderr
        );
        run.assert_no_canary(&[canary.as_str()]);
        assert_eq!(
            fx.calls_text(),
            "",
            "flyctl ran for an unrepresentable value"
        );
    }
    let mut fx = Fixture::new();
    let long = "y".repeat(60_000);
    fx.set("LONG_SECRET", &long)
        .set("WB_SECRET_KEYS", "LONG_SECRET");
    fx.run("secrets").expect_code(0);
    assert_eq!(
        fx.app_state()["secrets"]["LONG_SECRET"]["digest"],
        sha256_hex(long.as_bytes()).as_str()
    );
}

#[test]
fn values_that_are_not_utf8_are_refused_by_name() {
    use std::os::unix::ffi::OsStrExt;
    if !double_ready() {
        return;
    }
    // flyctl sends secrets as JSON (fly-go flaps.go json.Marshal): Go replaces invalid
    // UTF-8 with U+FFFD, so such a value can never arrive as it was.
    for bytes in [
        &b"caf\xe9"[..],
        &b"a\xe2\x82"[..],
        &b"\xed\xa0\x80 surrogate"[..],
    ] {
        let mut fx = Fixture::new();
        fx.set("WB_SECRET_KEYS", "RAW_SECRET");
        let mut cmd = fx.command(Some("up"));
        cmd.env("RAW_SECRET", std::ffi::OsStr::from_bytes(bytes));
        let run = Run::from(cmd.output().unwrap());
        run.expect_code(1);
        assert!(run.stderr.contains("RAW_SECRET"), "{}", run.stderr);
        assert!(run.stderr.contains("not valid UTF-8"), "{}", run.stderr);
        assert_eq!(
            fx.calls_text(),
            "",
            "flyctl ran for a value it would change"
        );
    }
    // The double stores what Go's JSON would send: one U+FFFD per invalid byte.
    let fx = Fixture::new();
    fx.fly(&["apps", "create", APP], b"").expect_code(0);
    fx.fly(
        &["secrets", "import", "--stage", "-a", APP],
        b"RAW=a\xe2\x82b\n",
    )
    .expect_code(0);
    assert_eq!(
        fx.app_state()["secrets"]["RAW"]["digest"],
        sha256_hex("a\u{fffd}\u{fffd}b".as_bytes()).as_str()
    );
}

#[test]
fn values_import_cannot_carry_go_through_secrets_set_on_stdin() {
    if !double_ready() {
        return;
    }
    let canary = format!("canary-{}", random_token());
    // Each fails the dotenv form (CR line end; """ line end; '#' after one '"' on the
    // first line) but has no whitespace at its ends, so `secrets set NAME=-` keeps it.
    for value in [
        format!("{canary}\r\nwindows line"),
        format!("first\n{canary}\"\"\"\nlast"),
        format!("\"{canary}#x\nsecond"),
    ] {
        let mut fx = Fixture::new();
        fx.set("ODD_SECRET", &value)
            .set("WB_SECRET_KEYS", "ODD_SECRET");
        let run = fx.run("secrets");
        run.expect_code(0);
        run.assert_no_canary(&[canary.as_str()]);
        assert!(!fx.calls_text().contains(&canary), "a value reached argv");
        assert_eq!(
            fx.argv_of("secrets set"),
            ["secrets", "set", "ODD_SECRET=-", "--stage", "-a", APP]
        );
        let app = fx.app_state();
        assert_eq!(
            app["secrets"]["ODD_SECRET"]["digest"],
            sha256_hex(value.as_bytes()).as_str(),
            "{value:?}"
        );
        let imported: Vec<&str> = app["last_import"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(!imported.contains(&"ODD_SECRET"), "{imported:?}");
    }
}

#[test]
fn an_app_name_taken_elsewhere_fails_without_staging() {
    if !double_ready() {
        return;
    }
    let fx = Fixture::new();
    fx.write("home/.fly-double/taken", &format!("{APP}\n"));
    let run = fx.run("up");
    run.expect_code(1);
    assert!(
        run.stderr.contains("Name has already been taken"),
        "{}",
        run.stderr
    );
    assert_eq!(fx.commands(), ["version", "status", "apps create"]);
}

#[test]
fn update_mode_only_updates_an_existing_app() {
    if !double_ready() {
        return;
    }
    let mut fx = Fixture::new();
    fx.set("UPDATE", "1");
    let run = fx.run("up");
    run.expect_code(1);
    assert!(run.stderr.contains("UPDATE=1"), "{}", run.stderr);
    assert_eq!(fx.commands(), ["version", "status"]);

    fx.unset("UPDATE");
    fx.run("up").expect_code(0);
    fx.set("UPDATE", "1");
    let before = fx.commands().len();
    fx.run("up").expect_code(0);
    assert_eq!(
        fx.commands()[before..],
        [
            "version",
            "status",
            "secrets import",
            "volumes list",
            "deploy"
        ]
    );
    assert!(fx.argv_of("deploy").contains(&"--update-only".to_string()));
    let app = fx.app_state();
    assert_eq!(app["machines"].as_array().unwrap().len(), 1);
    assert_eq!(app["releases"][1]["update_only"], true);

    fx.set("UPDATE", "yes");
    let before = fx.commands().len();
    let run = fx.run("up");
    run.expect_code(1);
    assert!(
        run.stderr.contains("UPDATE must be 1 or 0"),
        "{}",
        run.stderr
    );
    assert_eq!(
        fx.commands().len(),
        before,
        "flyctl ran with an invalid UPDATE"
    );
}

#[test]
fn an_update_without_the_volume_refuses_to_create_it() {
    if !double_ready() {
        return;
    }
    let mut fx = Fixture::new();
    fx.fly(&["apps", "create", APP], b"").expect_code(0);
    fx.set("UPDATE", "1");
    let run = fx.run("up");
    run.expect_code(1);
    assert!(run.stderr.contains("no wbdata volume"), "{}", run.stderr);
    assert!(
        !fx.commands()
            .iter()
            .any(|c| c == "volumes create" || c == "deploy")
    );
}

#[test]
fn the_app_build_paths_deploy_without_the_prebuilt_image() {
    if !double_ready() {
        return;
    }
    let mut fx = Fixture::new();
    let dockerfile = fx.write("src/Dockerfile", "FROM scratch\n");
    fx.set("WB_FLY_DOCKERFILE", &dockerfile.display().to_string());
    fx.run("up").expect_code(0);
    let deploy = fx.argv_of("deploy");
    assert!(contains_pair(
        &deploy,
        "--dockerfile",
        &dockerfile.display().to_string()
    ));
    assert!(!deploy.contains(&"--image".to_string()), "{deploy:?}");
    let release = &fx.app_state()["releases"][0];
    assert!(
        release["image"]
            .as_str()
            .unwrap()
            .starts_with(&format!("registry.fly.io/{APP}:deployment-")),
        "{release}"
    );

    // A Dockerfile with a config that names an image: flyctl would deploy the image
    // (deploy_build.go fetchImageRef), so the recipe refuses before any flyctl call.
    let mut fx = Fixture::new();
    let with_image = format!("{FLY_TOML}\n[build]\nimage = \"ghcr.io/example/custom:9\"\n");
    fx.write("kit/fly.toml", &with_image);
    fx.set("WB_FLY_DOCKERFILE", &dockerfile.display().to_string());
    let run = fx.run("up");
    run.expect_code(1);
    assert!(
        run.stderr.contains("ignore the Dockerfile"),
        "{}",
        run.stderr
    );
    assert_eq!(fx.calls_text(), "");

    let mut fx = Fixture::new();
    let custom = format!("{FLY_TOML}\n[build]\nimage = \"ghcr.io/example/custom:9\"\n");
    let config = fx.write("src/fly.custom.toml", &custom);
    fx.set("WB_FLY_CONFIG", &config.display().to_string());
    fx.run("up").expect_code(0);
    let deploy = fx.argv_of("deploy");
    assert!(contains_pair(
        &deploy,
        "--config",
        &config.display().to_string()
    ));
    assert!(!deploy.contains(&"--image".to_string()), "{deploy:?}");
    let release = &fx.app_state()["releases"][0];
    assert_eq!(release["image"], "ghcr.io/example/custom:9");
    assert_eq!(
        release["config_sha256"],
        sha256_hex(custom.as_bytes()).as_str()
    );
}

#[test]
fn a_volume_in_another_region_does_not_count() {
    if !double_ready() {
        return;
    }
    let fx = Fixture::new();
    fx.fly(&["apps", "create", APP], b"").expect_code(0);
    fx.fly(
        &[
            "volumes", "create", "wbdata", "-r", "fra", "-a", APP, "--yes",
        ],
        b"",
    )
    .expect_code(0);
    fx.run("up").expect_code(0);
    assert!(contains_pair(
        &fx.argv_of("volumes create"),
        "--region",
        REGION
    ));
    let app = fx.app_state();
    let regions: Vec<&str> = app["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["region"].as_str().unwrap())
        .collect();
    assert_eq!(regions, ["fra", REGION]);
}

// ------------------------------------------------- the double's own fidelity ---

#[test]
fn double_first_deploy_creates_the_volume_and_later_ones_need_one() {
    if !double_ready() {
        return;
    }
    let fx = Fixture::new();
    fx.fly(&["apps", "create", APP], b"").expect_code(0);
    let toml = fx.fly_toml().display().to_string();
    // First deploy (app not deployed, no machines) with [mounts] and no volume:
    // flyctl creates a 1 GB volume in primary_region (deploy_first.go).
    let run = fx.fly(
        &[
            "deploy", "-a", APP, "--config", &toml, "--image", IMAGE, "--yes",
        ],
        b"",
    );
    run.expect_code(0);
    assert!(
        run.stdout
            .contains("Creating a 1 GB volume named 'wbdata' for process group 'app'"),
        "{}",
        run.stdout
    );
    let app = fx.app_state();
    assert_eq!(app["volumes"][0]["region"], REGION);
    assert_eq!(app["volumes"][0]["size_gb"], 1);
    assert_eq!(app["machines"][0]["region"], REGION);

    // A deployed app with no machines and no unattached volume: not a first deploy,
    // so nothing is created and the deploy fails (machines.go validateVolumeConfig).
    let fx = Fixture::new();
    fx.fly(&["apps", "create", APP], b"").expect_code(0);
    let bare = fx.write(
        "kit/bare.toml",
        "app = \"wb-recipe-test\"\nprimary_region = \"ams\"\n",
    );
    let bare = bare.display().to_string();
    fx.fly(
        &[
            "deploy",
            "-a",
            APP,
            "-c",
            &bare,
            "-i",
            IMAGE,
            "--ha=false",
            "-y",
        ],
        b"",
    )
    .expect_code(0);
    fx.fly(&["scale", "count", "0", "-a", APP, "--yes"], b"")
        .expect_code(0);
    assert_eq!(fx.app_state()["machines"].as_array().unwrap().len(), 0);
    let run = fx.fly(
        &[
            "deploy", "-a", APP, "--config", &toml, "--image", IMAGE, "--yes",
        ],
        b"",
    );
    run.expect_code(1);
    assert!(
        run.stderr.contains(
            "Error: creating a new machine in group 'app' requires an unattached 'wbdata' volume"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn double_scale_count_keeps_volumes_and_needs_a_complete_release() {
    if !double_ready() {
        return;
    }
    let fx = Fixture::new();
    fx.fly(&["apps", "create", APP], b"").expect_code(0);
    // count_machines.go: no complete release -> this error (nothing to scale).
    let run = fx.fly(&["scale", "count", "0", "-a", APP, "--yes"], b"");
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("Error: this app has no complete releases. Run `fly deploy` to create one"),
        "{}",
        run.stderr
    );
    let toml = fx.fly_toml().display().to_string();
    fx.fly(&["deploy", "-a", APP, "-c", &toml, "-i", IMAGE, "-y"], b"")
        .expect_code(0);
    // Without --yes: the prompt's non-interactive error (note the "--").
    let run = fx.fly(&["scale", "count", "0", "-a", APP], b"");
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("Error: --yes flag must be specified when not running interactively"),
        "{}",
        run.stderr
    );
    let run = fx.fly(&["scale", "count", "0", "-a", APP, "--yes"], b"");
    run.expect_code(0);
    assert!(run.stdout.contains("  Destroyed "), "{}", run.stdout);
    let app = fx.app_state();
    assert_eq!(app["machines"].as_array().unwrap().len(), 0);
    assert_eq!(app["volumes"].as_array().unwrap().len(), 1);
    assert_eq!(app["volumes"][0]["attached_machine_id"], Value::Null);
    let run = fx.fly(&["scale", "count", "0", "-a", APP, "--yes"], b"");
    run.expect_code(0);
    assert!(
        run.stdout.contains("App already scaled to desired state"),
        "{}",
        run.stdout
    );
}

#[test]
fn double_json_shapes_are_flyctls() {
    if !double_ready() {
        return;
    }
    let fx = Fixture::new();
    let run = fx.fly(&["apps", "create", APP, "--json"], b"");
    run.expect_code(0);
    let created: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(created["Name"], APP);
    assert_eq!(created["Organization"]["Slug"], "personal");
    let toml = fx.fly_toml().display().to_string();
    fx.fly(&["deploy", "-a", APP, "-c", &toml, "-i", IMAGE, "-y"], b"")
        .expect_code(0);
    // status.go renderMachineJSONStatus: a Go map (keys sorted), 4-space indent.
    let run = fx.fly(&["status", "-a", APP, "--json"], b"");
    run.expect_code(0);
    assert!(
        run.stdout.starts_with("{\n    \"AppURL\""),
        "{}",
        run.stdout
    );
    let status: Value = serde_json::from_str(&run.stdout).unwrap();
    let keys: Vec<&String> = status.as_object().unwrap().keys().collect();
    for key in [
        "AppURL",
        "Deployed",
        "Hostname",
        "ID",
        "Machines",
        "Name",
        "Organization",
        "PlatformVersion",
        "Status",
        "Version",
    ] {
        assert!(keys.iter().any(|k| *k == key), "{key}: {keys:?}");
    }
    assert_eq!(status["Machines"][0]["region"], REGION);
    assert_eq!(
        status["Machines"][0]["config"]["mounts"][0]["path"],
        "/data"
    );
    // fly-go volume_types.go Volume
    let run = fx.fly(&["volumes", "list", "-a", APP, "--json"], b"");
    run.expect_code(0);
    let volumes: Value = serde_json::from_str(&run.stdout).unwrap();
    let fields: Vec<&String> = volumes[0].as_object().unwrap().keys().collect();
    let mut want = [
        "id",
        "name",
        "state",
        "size_gb",
        "region",
        "zone",
        "encrypted",
        "attached_machine_id",
        "attached_alloc_id",
        "created_at",
        "host_dedication_id",
        "snapshot_retention",
        "auto_backup_enabled",
        "host_status",
    ];
    want.sort_unstable();
    assert_eq!(fields, want);
    assert!(!run.stdout.contains("x_data"), "the double's marker leaked");
}

#[test]
fn double_refuses_to_prompt_when_not_interactive() {
    if !double_ready() {
        return;
    }
    let fx = Fixture::new();
    fx.fly(&["apps", "create", APP], b"").expect_code(0);
    let run = fx.fly(&["apps", "destroy", APP], b"");
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("Error: yes flag must be specified when not running interactively"),
        "{}",
        run.stderr
    );
    let run = fx.fly(
        &["volumes", "create", "wbdata", "-r", REGION, "-a", APP],
        b"",
    );
    run.expect_code(1);
    assert!(
        run.stderr.contains("yes flag must be specified"),
        "{}",
        run.stderr
    );
    let app = fx.app_state();
    assert_eq!(app["volumes"].as_array().unwrap().len(), 0);

    fx.write("home/.fly-double/orgs", "personal PERSONAL\nacme SHARED\n");
    let run = fx.fly(&["apps", "create", "another-app"], b"");
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("org slug must be specified when not running interactively"),
        "{}",
        run.stderr
    );
    fx.fly(&["apps", "create", "another-app", "--org", "acme"], b"")
        .expect_code(0);
}

#[test]
fn double_rejects_unknown_commands_and_flags() {
    if !double_ready() {
        return;
    }
    let fx = Fixture::new();
    let run = fx.fly(&["bogus"], b"");
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("Error: unknown command \"bogus\" for \"fly\""),
        "{}",
        run.stderr
    );
    // internal/cli/cli.go Run: the usage hint goes to stdout.
    assert_eq!(run.stdout, "Run 'fly --help' for usage.\n\n");
    let run = fx.fly(&["status", "-a", APP, "--bogus"], b"");
    run.expect_code(1);
    assert!(
        run.stderr.contains("Error: unknown flag: --bogus"),
        "{}",
        run.stderr
    );
    // `fly deploy --region` is what broke every `up` (flag removed in v0.2.47).
    let run = fx.fly(&["deploy", "-a", APP, "--region", REGION], b"");
    run.expect_code(1);
    assert_eq!(run.stderr, "Error: unknown flag: --region\n");
    let run = fx.fly(&["deploy", "-a", APP, "-r", REGION], b"");
    run.expect_code(1);
    assert_eq!(run.stderr, "Error: unknown shorthand flag: 'r' in -r\n");
    // pflag's own errors: a value flag without its value, a bad bool, a bad int.
    let run = fx.fly(&["status", "-a"], b"");
    assert_eq!(run.stderr, "Error: flag needs an argument: 'a' in -a\n");
    let run = fx.fly(&["status", "--app"], b"");
    assert_eq!(run.stderr, "Error: flag needs an argument: --app\n");
    let run = fx.fly(&["deploy", "--ha=maybe"], b"");
    assert_eq!(
        run.stderr,
        "Error: invalid argument \"maybe\" for \"--ha\" flag: strconv.ParseBool: parsing \"maybe\": invalid syntax\n"
    );
    let run = fx.fly(&["volumes", "create", "v", "-s", "big"], b"");
    assert_eq!(
        run.stderr,
        "Error: invalid argument \"big\" for \"-s, --size\" flag: strconv.ParseInt: parsing \"big\": invalid syntax\n"
    );
    // cobra's arg validators.
    let run = fx.fly(&["status", "extra"], b"");
    assert_eq!(
        run.stderr,
        "Error: unknown command \"extra\" for \"fly status\"\n"
    );
    let run = fx.fly(&["volumes", "create"], b"");
    assert_eq!(run.stderr, "Error: accepts 1 arg(s), received 0\n");
    let run = fx.fly(&["scale", "count"], b"");
    assert_eq!(
        run.stderr,
        "Error: requires at least 1 arg(s), only received 0\n"
    );
    // A group with an unknown sub-command prints its help (cobra: not runnable).
    let run = fx.fly(&["apps", "frobnicate"], b"");
    run.expect_code(0);
    assert!(run.stdout.contains("Available Commands:"), "{}", run.stdout);
    // A flyctl command the double does not model says so (never pretends).
    let run = fx.fly(&["machine", "list"], b"");
    run.expect_code(70);
    assert!(run.stderr.contains("does not model"), "{}", run.stderr);
    // Aliases: deploy's --auto-confirm is Yes's alias, `vol ls` is `volumes list`.
    let run = fx.fly(&["vol", "ls", "-a", APP], b"");
    assert!(run.stderr.contains("Could not find App"), "{}", run.stderr);
    let calls = fx.calls();
    assert!(calls.iter().filter(|c| c["exit"] == 1).count() >= 12);
}

/// flyctl's own parser test vectors (internal/command/secrets/parser_test.go at
/// ad0172fac), transcribed as data: input, then the expected NAME=VALUE map.
/// One parser test: its name in parser_test.go, the input, the expected map.
type ParserVector = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const PARSER_VECTORS: &[ParserVector] = &[
    (
        "Test_parse_basic",
        "\n# A comment plus a new line with spaces\n\nFOO=BAR\n# Another comment\nQUX=NAH\n",
        &[("FOO", "BAR"), ("QUX", "NAH")],
    ),
    (
        "Test_parse_unix",
        "FOO=BAR\nQUX=NAH\n",
        &[("FOO", "BAR"), ("QUX", "NAH")],
    ),
    (
        "Test_parse_windows",
        "FOO=BAR\r\nQUX=NAH\r\n",
        &[("FOO", "BAR"), ("QUX", "NAH")],
    ),
    (
        "Test_parse_mulltiline",
        "\nFOO=BAR\nMULTILINE=\"\"\"SOMETHING\nANOTHER LINE\n\nENDSHERE\"\"\"\nTRAILERENV=what\nFIN=\"\"\"Here is the end,\nmy only friend\"\"\"\n",
        &[
            ("FOO", "BAR"),
            ("MULTILINE", "SOMETHING\nANOTHER LINE\n\nENDSHERE"),
            ("TRAILERENV", "what"),
            ("FIN", "Here is the end,\nmy only friend"),
        ],
    ),
    (
        "Test_parse_with_comma",
        "FOO=BAR,BAZ",
        &[("FOO", "BAR,BAZ")],
    ),
    (
        "Test_parse_with_equal",
        "FOO=BAR BAZ",
        &[("FOO", "BAR BAZ")],
    ),
    (
        "Test_parse_with_double_quotes",
        "FOO=\"BAR BAZ\"",
        &[("FOO", "BAR BAZ")],
    ),
    ("Test_parse_with_spaces", "FOO = BAR", &[("FOO", "BAR")]),
    (
        "Test_parse_with_comment",
        "FOO=\"BAR BAZ\" # comment",
        &[("FOO", "BAR BAZ")],
    ),
    (
        "Test_parse_with_single_quotes",
        "FOO='BAR BAZ'\nKEY='value'",
        &[("FOO", "BAR BAZ"), ("KEY", "value")],
    ),
    (
        "Test_parse_singleline_triple_quotes",
        "VARIABLE=\"\"\"my-single-line-multiline-string\"\"\"\nANOTHER=\"\"\"another\"\"\"",
        &[
            ("VARIABLE", "my-single-line-multiline-string"),
            ("ANOTHER", "another"),
        ],
    ),
    (
        "Test_parse_triple_quotes_edge_cases",
        "EMPTY=\"\"\"\"\"\"\nSINGLE=\"\"\"x\"\"\"\nWITHSPACES=\"\"\"  spaces  \"\"\"\nMIXED=\"\"\"line1\"\"\"\nNORMAL=regular",
        &[
            ("EMPTY", ""),
            ("SINGLE", "x"),
            ("WITHSPACES", "  spaces  "),
            ("MIXED", "line1"),
            ("NORMAL", "regular"),
        ],
    ),
    (
        "Test_parse_singleline_triple_quotes_with_spaces",
        "VARIABLE = \"\"\"my-single-line-multiline-string\"\"\"\nANOTHER = \"\"\"another\"\"\"",
        &[
            ("VARIABLE", "my-single-line-multiline-string"),
            ("ANOTHER", "another"),
        ],
    ),
];

/// The double's transcribed parser on `input` (its `--parse-secrets-digests` hook):
/// NAME -> sha256 of the value it returns, or the error text.
fn double_parse(input: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let mut child = Command::new(doubles_dir().join("fly"))
        .arg("--parse-secrets-digests")
        .env_clear()
        .env("PATH", double_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let map: BTreeMap<String, String> = serde_json::from_slice(&out.stdout).unwrap();
    Ok(map)
}

#[test]
fn double_parser_passes_flyctls_own_test_vectors() {
    if !double_ready() {
        return;
    }
    for (test, input, expected) in PARSER_VECTORS {
        let got = double_parse(input.as_bytes()).unwrap_or_else(|e| panic!("{test}: {e}"));
        let want: BTreeMap<String, String> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), sha256_hex(v.as_bytes())))
            .collect();
        assert_eq!(got, want, "{test}");
    }
    // Facts of parser.go beyond its tests: '#' after an even number of '"' cuts; an
    // unclosed multi-line value is dropped; a line without '=' is the one error.
    for (input, expected) in [
        // The old spine's NAME="value" for {"k":"v#1"}: four '"' before '#', so cut.
        ("A=\"{\"k\":\"v#1\"}\"", "\"{\"k\":\"v"),
        ("A={\"k\":\"v#1\"}", "{\"k\":\"v#1\"}"),
        ("A=\"x#y\"", "x#y"),
        ("A=plain # note", "plain"),
        // Single quotes do not protect a '#': no '"' before it (even), so cut.
        ("A='it#s'", "'it"),
    ] {
        let got = double_parse(input.as_bytes()).unwrap();
        assert_eq!(got["A"], sha256_hex(expected.as_bytes()), "{input}");
    }
    assert!(
        double_parse(b"OPEN=\"\"\"never\nclosed\n")
            .unwrap()
            .is_empty()
    );
    let err = double_parse(b"NOVALUE\n").unwrap_err();
    assert!(
        err.contains("Secrets must be provided as NAME=VALUE pairs (NOVALUE is invalid)"),
        "{err}"
    );
}

#[test]
fn double_secrets_import_stores_digests_and_fails_like_flyctl() {
    if !double_ready() {
        return;
    }
    let fx = Fixture::new();
    fx.fly(&["apps", "create", APP], b"").expect_code(0);
    fx.fly(
        &["secrets", "import", "--stage", "-a", APP],
        b"FOO=BAR\nQUOTED=\"BAR BAZ\"\n",
    )
    .expect_code(0);
    let secrets = fx.app_state()["secrets"].clone();
    assert_eq!(secrets["FOO"]["digest"], sha256_hex(b"BAR").as_str());
    assert_eq!(secrets["QUOTED"]["digest"], sha256_hex(b"BAR BAZ").as_str());
    assert_eq!(secrets["FOO"]["status"], "staged");
    assert!(
        !fx.path("home/.fly-double/state.json")
            .display()
            .to_string()
            .is_empty()
    );
    let state_text = std::fs::read_to_string(fx.double_file("state.json")).unwrap();
    assert!(!state_text.contains("BAR BAZ"), "a value was stored");

    for (input, message) in [
        (
            &b"NOVALUE\n"[..],
            "Error: Failed to parse secrets from stdin: Secrets must be provided as NAME=VALUE pairs",
        ),
        (
            &b"\n# only a comment\n"[..],
            "Error: requires at least one SECRET=VALUE pair",
        ),
        (
            &b"OPEN=\"\"\"never\nclosed\n"[..],
            "Error: requires at least one SECRET=VALUE pair",
        ),
    ] {
        let run = fx.fly(&["secrets", "import", "--stage", "-a", APP], input);
        run.expect_code(1);
        assert!(run.stderr.contains(message), "{}", run.stderr);
    }
    let run = fx.fly(&["secrets", "import", "-a", "no-such-app"], b"A=b\n");
    run.expect_code(1);
    assert_eq!(run.stderr, "Error: Could not find App\n");
    // secrets set NAME=- reads one value from stdin, TrimSpace'd (helpers/stdin.go).
    fx.fly(
        &["secrets", "set", "PIPED=-", "--stage", "-a", APP],
        b"  v a l\n",
    )
    .expect_code(0);
    assert_eq!(
        fx.app_state()["secrets"]["PIPED"]["digest"],
        sha256_hex(b"v a l").as_str()
    );
}

#[test]
fn double_injected_failures_are_one_shot_and_change_nothing() {
    if !double_ready() {
        return;
    }
    let fx = Fixture::new();
    fx.fail_next("apps create 7 Error: injected outage");
    let run = fx.fly(&["apps", "create", APP], b"");
    run.expect_code(7);
    assert!(run.stderr.contains("injected outage"), "{}", run.stderr);
    assert!(fx.state()["apps"].as_object().unwrap().is_empty());
    fx.fly(&["apps", "create", APP], b"").expect_code(0);
    let calls = fx.calls();
    assert_eq!(calls[0]["exit"], 7);
    assert_eq!(calls[0]["mutating"], true);
    assert_eq!(calls[1]["exit"], 0);
    assert_eq!(
        std::fs::read_to_string(fx.double_file("fail")).unwrap(),
        "",
        "the rule was not consumed"
    );
}

// --------------------------------------------- the dotenv round-trip, at large ---

/// Values the recipe must deliver (a lower bound, from flyctl's source, independent
/// of the spine's own checks): every one-line value (`"""v"""` or `'v'` reads back
/// through parser.go); a multi-line value whose lines before the last end neither in
/// `"""` nor in CR and whose first line has no `#`; and any ASCII value without
/// whitespace at its ends (`secrets set NAME=-`, helpers/stdin.go). Values outside it
/// may be delivered (then exactly) or refused by name.
fn must_carry(value: &str) -> bool {
    let lines: Vec<&str> = value.split('\n').collect();
    let by_import = if lines.len() == 1 {
        true
    } else {
        let last = lines.len() - 1;
        !lines[0].contains('#')
            && lines
                .iter()
                .enumerate()
                .all(|(i, l)| i == last || (!l.ends_with('\r') && !l.ends_with("\"\"\"")))
    };
    let by_set = !value.is_empty()
        && value.is_ascii()
        && value.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b') == value;
    by_import || by_set
}

/// Runs `secrets` with PROP_SECRET=value in one shared fixture and checks the
/// outcome against `flyctl_can_carry`: an exact round-trip, or exit 1 naming it.
fn check_round_trip(fx: &Fixture, value: &str) -> Result<(), String> {
    let imports = |fx: &Fixture| {
        fx.commands()
            .iter()
            .filter(|c| *c == "secrets import" || *c == "secrets set")
            .count()
    };
    let before = imports(fx);
    let mut cmd = fx.command(Some("secrets"));
    cmd.env("PROP_SECRET", value);
    let run = Run::from(cmd.output().unwrap());
    if run.code == 0 {
        let digest = fx.app_state()["secrets"]["PROP_SECRET"]["digest"].clone();
        if digest != sha256_hex(value.as_bytes()).as_str() {
            return Err(format!("{value:?} came back as another value ({digest})"));
        }
    } else if must_carry(value) {
        return Err(format!("{value:?}: exit {}: {}", run.code, run.stderr));
    } else if run.code != 1 || !run.stderr.contains("PROP_SECRET") || imports(fx) != before {
        return Err(format!(
            "{value:?} cannot be carried, so the spine must refuse it before flyctl runs; \
             exit {}, {} secrets import call(s): {}",
            run.code,
            imports(fx) - before,
            run.stderr
        ));
    }
    Ok(())
}

fn round_trip_fixture() -> Fixture {
    let mut fx = Fixture::new();
    fx.set("WB_SECRET_KEYS", "PROP_SECRET");
    fx
}

#[test]
fn edge_values_round_trip_or_are_refused_by_name() {
    if !double_ready() {
        return;
    }
    let fx = round_trip_fixture();
    let mut carried = 0;
    for value in [
        "",
        "\"",
        "\"\"",
        "\"\"\"",
        "\"\"\"\"",
        "\"\"x",
        "\"\"x\"",
        "\"\"x\r",
        "\"x",
        "x\"",
        "\"x\"",
        " ",
        "  lead",
        "trail  ",
        "=",
        "a=b=c",
        "#hash",
        "\r",
        "x\r",
        "\r\n",
        "a\r\nb",
        "\n",
        "\n\n",
        "a\n",
        "\na",
        "\"\"\"\n\"\"\"",
        "x\"\"\"\ny",
        "x\ny\"\"\"",
        "x\n\"\"\"\ny",
        "x\ny\r",
        "\"\"\"x\ny",
        "# c\n# d",
        "\t",
        "é€✓",
        "{\"k\":\"v#1\"}",
        "'single'",
        "it's",
        "a \"#\" b",
        "x # y",
        "#",
        "'",
        "''",
        "\"#\nsecond",
        "-----BEGIN PRIVATE KEY-----\nMIIE+/=\n-----END PRIVATE KEY-----\n",
        // Neither form carries these (whitespace at an end for `secrets set`):
        " \"#\nx",
        "x\"\"\"\ny\n",
        "\n\"#\n",
    ] {
        check_round_trip(&fx, value).unwrap();
        carried += usize::from(
            fx.app_state()["secrets"]["PROP_SECRET"]["digest"]
                == sha256_hex(value.as_bytes()).as_str(),
        );
    }
    // Both branches were exercised.
    assert!(carried > 35, "{carried}");
    assert!(carried <= 45, "{carried}");
}

#[test]
fn any_value_round_trips_or_is_refused_by_name() {
    if !double_ready() {
        return;
    }
    let fx = round_trip_fixture();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&"[a \"'=#\n\r\té€-]{0,24}", |value| {
            check_round_trip(&fx, &value).map_err(TestCaseError::fail)
        })
        .unwrap();
}

/// The spine's dotenv text for PROP_SECRET=value (the value passed in the
/// environment, never argv), or None when the spine refuses it.
fn spine_dotenv(value: &str) -> Option<Vec<u8>> {
    let script = format!(
        "set -euo pipefail; WB_RECIPE_PLACE=test; source {}/_recipe.sh; \
         WB_ENGINE_ENV=(\"PROP_SECRET=$PROP_SECRET\"); wb_engine_dotenv",
        recipes_dir().display()
    );
    let out = Command::new(bash())
        .args(["-c", &script])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("PROP_SECRET", value)
        .output()
        .unwrap();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("PROP_SECRET"),
            "a refusal names the secret: {err}"
        );
        return None;
    }
    Some(out.stdout)
}

/// The property the recipe rests on, at the parser level: whatever the spine writes
/// for a value, flyctl's parser (transcribed in the double) returns exactly that value.
/// The spine may refuse only multi-line values (every one-line value has a form).
fn dotenv_round_trip(value: &str) -> Result<(), String> {
    match spine_dotenv(value) {
        None if value.contains('\n') || value.len() > 60_000 => Ok(()),
        None => Err(format!("{value:?}: a one-line value was refused")),
        Some(text) => {
            let parsed = double_parse(&text).map_err(|e| format!("{value:?}: {e}"))?;
            let want = sha256_hex(value.as_bytes());
            if parsed.len() == 1 && parsed.get("PROP_SECRET") == Some(&want) {
                Ok(())
            } else {
                Err(format!("{value:?} parsed back differently: {parsed:?}"))
            }
        }
    }
}

#[test]
fn spine_dotenv_reads_back_exactly_through_flyctls_parser() {
    if !double_ready() {
        return;
    }
    for value in [
        "{\"k\":\"v#1\"}".to_string(),
        "\"\"\"".to_string(),
        "\"\"\"x\"\"\"".to_string(),
        "'\"'#'".to_string(),
        "a\r".to_string(),
        "\r\n".to_string(),
        format!("{}#{}", "\"".repeat(3), "z"),
        "-----BEGIN CERTIFICATE-----\nMIIB\"#'\n-----END CERTIFICATE-----\n".to_string(),
        "w".repeat(64_000),
        "w".repeat(66_000),
    ] {
        dotenv_round_trip(&value).unwrap();
    }
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 160,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&"[a '\"#=\n\r\t é-]{0,40}", |value| {
            dotenv_round_trip(&value).map_err(TestCaseError::fail)
        })
        .unwrap();
}
