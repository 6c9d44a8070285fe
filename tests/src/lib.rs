//! Shared support for the kit's tests: where the repository is, the built `xtask` and
//! `wb-engine` binaries, and a command builder that runs the kit in an isolated state
//! directory with a controlled environment.
//!
//! The tests drive the *built binary* (as users, CI and agents do) and call the `xtask`
//! library directly for pure functions (golden files, properties).

pub mod k8s;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repo")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Builds a workspace binary once per test process and returns its path.
fn built(package: &str, bin: &str, cell: &'static OnceLock<PathBuf>) -> PathBuf {
    cell.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--package", package, "--bin", bin])
            .current_dir(repo_root())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building {bin} failed");
        let path = target_dir().join("debug").join(bin);
        assert!(path.is_file(), "{} was not built", path.display());
        path
    })
    .clone()
}

/// The kit's binary (`target/debug/xtask`), built on first use.
pub fn kit_bin() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    built("xtask", "xtask", &CELL)
}

/// The reference engine's binary (`target/debug/wb-engine`), built on first use.
pub fn engine_bin() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    built("wb-engine", "wb-engine", &CELL)
}

/// The directory holding the test doubles of provider CLIs (`fly`, `flyctl`).
pub fn doubles_dir() -> PathBuf {
    repo_root().join("tests/doubles/bin")
}

/// A sandbox for one test: its own `WB_HOME`, `HOME` and working directory, and a
/// cleared environment so nothing from the developer's shell leaks in.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("wb-test-")
            .tempdir()
            .expect("a temp dir");
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
        let env = vec![
            ("PATH".to_string(), path),
            (
                "HOME".to_string(),
                dir.path().join("home").display().to_string(),
            ),
            (
                "WB_HOME".to_string(),
                dir.path().join("wb").display().to_string(),
            ),
            ("NO_COLOR".to_string(), "1".to_string()),
        ];
        Sandbox { dir, env }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn home(&self) -> PathBuf {
        self.path().join("home")
    }

    pub fn wb_home(&self) -> PathBuf {
        self.path().join("wb")
    }

    /// The working directory the kit runs in (outside the repo unless a test says so).
    pub fn work(&self) -> PathBuf {
        self.path().join("work")
    }

    /// Sets (or replaces) an environment variable for every command of this sandbox.
    pub fn set(&mut self, name: &str, value: impl Into<String>) -> &mut Sandbox {
        let value = value.into();
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.to_string(), value));
        self
    }

    pub fn unset(&mut self, name: &str) -> &mut Sandbox {
        self.env.retain(|(n, _)| n != name);
        self
    }

    /// Puts a directory first on PATH.
    pub fn prepend_path(&mut self, dir: &Path) -> &mut Sandbox {
        let path = self
            .env
            .iter()
            .find(|(n, _)| n == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        self.set("PATH", format!("{}:{path}", dir.display()))
    }

    /// Writes a file under the sandbox and returns its path.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `xtask <args>` in the sandbox's working directory.
    pub fn kit(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(kit_bin());
        cmd.args(args)
            .current_dir(self.work())
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `xtask deploy <args>` and captures everything.
    pub fn deploy(&self, args: &[&str]) -> Run {
        let mut all = vec!["deploy"];
        all.extend_from_slice(args);
        Run::from(self.kit(&all).output().expect("the kit runs"))
    }
}

/// A finished run of the kit.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    /// The one JSON object a `--json` run prints on stdout.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON object ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Asserts the exit code, showing both streams when it is not.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts that no canary value appears in either stream.
    #[track_caller]
    pub fn assert_no_canary(&self, canaries: &[&str]) {
        for canary in canaries {
            assert!(
                !self.stdout.contains(canary),
                "canary {canary:?} leaked to stdout:\n{}",
                self.stdout
            );
            assert!(
                !self.stderr.contains(canary),
                "canary {canary:?} leaked to stderr:\n{}",
                self.stderr
            );
        }
    }
}

/// Whether `tool` is on PATH. When it is not and `WB_REQUIRE_TOOLS=1` (CI sets it),
/// the test fails; otherwise it prints a loud reason and the caller skips.
pub fn require_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var("WB_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!(
                "`{tool}` is required (WB_REQUIRE_TOOLS=1) but not on PATH — install it (see .ci/run)"
            );
        }
        eprintln!(
            "SKIPPED: `{tool}` is not on PATH — this test needs it; CI installs it and sets WB_REQUIRE_TOOLS=1"
        );
    }
    found
}

/// Checks a deployment file's text the way every verb does (`xtask::load::check_file`):
/// the golden files, the properties and the spine parity test share this one path.
/// `providers` are the provider names that have a recipe.
pub fn check_text(
    shown: &str,
    stem: &str,
    text: Option<&str>,
    id: Option<&str>,
    env: &xtask::core::secret::DeployEnv,
    providers: &[&str],
) -> (xtask::core::drawer::Drawer, xtask::core::validate::Checked) {
    let read = xtask::load::FileText {
        text: text.map(str::to_string),
        diagnostics: Vec::new(),
    };
    check_read(shown, stem, &read, id, env, providers)
}

/// The contract of a bundled recipe (its header), or the empty contract for a provider
/// the tests invent.
pub fn bundled_contract(provider: &str) -> xtask::core::contract::Contract {
    let want = format!("{provider}/bootstrap.sh");
    xtask::providers::resolve::BUNDLED
        .iter()
        .find(|(path, _)| *path == want)
        .map(|(_, text)| {
            xtask::providers::header::scan(text, provider)
                .expect("a bundled recipe's header parses")
                .contract
        })
        .unwrap_or_default()
}

/// [`check_text`] for what `xtask::load::read_file` returned.
pub fn check_read(
    shown: &str,
    stem: &str,
    read: &xtask::load::FileText,
    id: Option<&str>,
    env: &xtask::core::secret::DeployEnv,
    providers: &[&str],
) -> (xtask::core::drawer::Drawer, xtask::core::validate::Checked) {
    let recipe_for = |p: &str| {
        if providers.contains(&p) {
            Ok(bundled_contract(p))
        } else {
            Err(format!(
                "no provider recipe for `{p}` — expected providers/{p}/bootstrap.sh; known providers: {} (WB_PROVIDERS_DIR, repo, or bundled)",
                providers.join(", ")
            ))
        }
    };
    let inputs = xtask::load::Inputs {
        shown,
        stem,
        id,
        program: "cargo xtask deploy",
        deploy_env: env,
        recipe_for: &recipe_for,
        require_secrets: true,
    };
    xtask::load::check_file(read, &inputs)
}
