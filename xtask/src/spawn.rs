//! The sealed spawn (SPEC §7.4): how the kit runs a provider recipe.
//!
//! `bash <root>/<provider>/bootstrap.sh` through duct, with a CLEARED environment that
//! holds only what [`sealed_env`] computes — a pure function, so tests can compare it
//! with the spine — and stdin from `/dev/null`. Output streams live; the recipe's exit
//! code (128 + N when a signal ended it) is what the caller passes on.
//!
//! While a recipe runs the kit does not die of SIGINT or SIGTERM ([`signals`]): Ctrl-C
//! reaches the whole foreground process group, so the recipe gets it and ends, and the
//! kit then removes its private temp directory ([`PrivateTemp`]) and exits with the
//! recipe's code. A SIGTERM sent to the kit alone is forwarded to the recipe.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::Duration;

use crate::deployment::Deployment;
use crate::engine_env::EngineEnv;

/// The actions the spine's `wb_recipe_run` accepts.
pub const ACTIONS: &[&str] = &["up", "secrets", "down", "status", "logs", "url"];

/// The names the kit itself sets for a recipe run.
pub const KIT_INPUTS: &[&str] = &[
    "PATH",
    "HOME",
    "WB_RECIPE_ACTION",
    "WB_PROVIDERS_DIR",
    "WB_IMAGE",
    "WB_APP_NAME",
    "WB_PORT",
    "WB_REGION",
    "WB_SECRET_KEYS",
    "WB_ENGINE_KEYS",
    "WB_FLY_TOML",
    "WB_PURGE",
];

/// App-build passthroughs: taken from the caller's environment when set (non-empty).
pub const APP_BUILD_PASSTHROUGH: &[&str] = &["WB_FLY_CONFIG", "WB_FLY_DOCKERFILE", "UPDATE"];

/// The PATH a recipe gets when the caller has none.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Names that change how bash or the dynamic loader behaves: never set from a secret or
/// a passthrough, whatever the deployment declares.
fn is_shell_sensitive(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "BASH_ENV",
        "ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "IFS",
        "CDPATH",
        "GLOBIGNORE",
        "POSIXLY_CORRECT",
        "PS4",
        "TMOUT",
        "SHELL",
        "PWD",
        "OLDPWD",
        "SHLVL",
    ];
    NAMES.contains(&name)
        || name.starts_with("BASH_")
        || name.starts_with("LD_")
        || name.starts_with("DYLD_")
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The credential variables a recipe names on its inert header line
/// (`# wb-passthrough: NAME NAME`). The header is the run of comment and blank lines at
/// the top of `bootstrap.sh`; nothing in it is executed. A name that is not
/// `^[A-Z][A-Z0-9_]*$`, is the kit's own (`WB_*`, PATH, HOME, the app-build
/// passthroughs) or changes how bash runs is refused.
pub fn passthrough_names(script: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for line in script.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let Some(comment) = trimmed.strip_prefix('#') else {
            break;
        };
        let Some(list) = comment.trim_start().strip_prefix("wb-passthrough:") else {
            continue;
        };
        for name in list.split_whitespace() {
            if !is_env_name(name) {
                return Err(format!(
                    "the recipe's `# wb-passthrough:` line names `{name}`, which is not a variable name (^[A-Z][A-Z0-9_]*$)"
                ));
            }
            if name.starts_with("WB_")
                || KIT_INPUTS.contains(&name)
                || APP_BUILD_PASSTHROUGH.contains(&name)
                || is_shell_sensitive(name)
            {
                return Err(format!(
                    "the recipe's `# wb-passthrough:` line names `{name}`, which the kit sets itself or which changes how bash runs — a recipe may pass through only its own CLI's credentials"
                ));
            }
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
    }
    Ok(names)
}

/// `<root>/<provider>/bootstrap.sh`, refusing any provider that is not a plain name
/// (`^[a-z0-9][a-z0-9-]*$`): the validator already refused it, and this check keeps a
/// path like `../x` from ever being built here, whatever the caller.
pub fn bootstrap_path(root: &Path, provider: &str) -> Result<PathBuf, String> {
    if !crate::recipes::is_plain_name(provider) {
        return Err(format!(
            "provider `{provider}` is not a plain name (^[a-z0-9][a-z0-9-]*$); refusing to look for its recipe"
        ));
    }
    Ok(root.join(provider).join("bootstrap.sh"))
}

/// What one recipe run is asked to do, beyond the deployment and its engine env.
#[derive(Debug, Clone)]
pub struct RecipeRun<'a> {
    /// One of [`ACTIONS`].
    pub action: &'a str,
    /// The recipes root (`WB_PROVIDERS_DIR` for the recipe; where `_recipe.sh` is).
    pub providers_dir: &'a Path,
    /// The rendered fly.toml in the run's private temp directory.
    pub fly_toml: Option<&'a Path>,
    /// Names from the recipe's `# wb-passthrough:` header ([`passthrough_names`]).
    pub passthrough: &'a [String],
}

/// The complete environment of a recipe run, in order — nothing else reaches the
/// recipe. `caller` reads the kit's own environment (PATH, HOME, the passthroughs);
/// everything else comes from the deployment and its engine env.
///
/// Order: PATH, HOME, WB_RECIPE_ACTION, WB_PROVIDERS_DIR, WB_IMAGE, WB_APP_NAME, WB_PORT,
/// WB_REGION, WB_SECRET_KEYS, the engine env (each by name, in its order), WB_ENGINE_KEYS,
/// WB_FLY_TOML, the app-build passthroughs, then the recipe's credential passthroughs.
/// Unset or empty caller values are left out, as are the deployment's absent optionals.
///
/// Refuses an engine variable whose name would replace a kit input with another value
/// (a secret named `PATH`), or that changes how bash runs (`BASH_ENV`, `IFS`, `LD_*`…).
pub fn sealed_env(
    d: &Deployment,
    engine: &EngineEnv,
    run: &RecipeRun,
    caller: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Vec<(String, OsString)>, String> {
    if !ACTIONS.contains(&run.action) {
        return Err(format!(
            "`{}` is not a recipe action ({})",
            run.action,
            ACTIONS.join(", ")
        ));
    }
    let set = |name: &str| caller(name).filter(|v| !v.is_empty());
    let mut env: Vec<(String, OsString)> = Vec::new();
    let put = |env: &mut Vec<(String, OsString)>, name: &str, value: OsString| {
        env.push((name.to_string(), value));
    };
    put(
        &mut env,
        "PATH",
        set("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
    );
    if let Some(home) = set("HOME") {
        put(&mut env, "HOME", home);
    }
    put(&mut env, "WB_RECIPE_ACTION", run.action.into());
    put(
        &mut env,
        "WB_PROVIDERS_DIR",
        run.providers_dir.as_os_str().to_owned(),
    );
    put(&mut env, "WB_IMAGE", d.image.clone().into());
    if let Some(app) = &d.app {
        put(&mut env, "WB_APP_NAME", app.into());
    }
    put(&mut env, "WB_PORT", d.port.to_string().into());
    if let Some(region) = &d.region {
        put(&mut env, "WB_REGION", region.into());
    }
    put(&mut env, "WB_SECRET_KEYS", d.secrets.join(" ").into());

    let reserved = |name: &str| {
        KIT_INPUTS.contains(&name)
            || APP_BUILD_PASSTHROUGH.contains(&name)
            || run.passthrough.iter().any(|p| p == name)
    };
    for (name, value) in &engine.0 {
        if is_shell_sensitive(name) {
            return Err(format!(
                "the engine env holds `{name}`, a name that changes how bash or the loader behaves — rename that secret"
            ));
        }
        if let Some((_, existing)) = env.iter().find(|(n, _)| n == name) {
            if existing.to_str() == Some(value.expose()) {
                continue;
            }
            return Err(format!(
                "the engine env's `{name}` would replace the kit's own `{name}` for the recipe — rename that secret"
            ));
        }
        if reserved(name) {
            return Err(format!(
                "the engine env holds `{name}`, which the kit passes to the recipe from your environment — rename that secret"
            ));
        }
        put(&mut env, name, value.expose().into());
    }
    put(&mut env, "WB_ENGINE_KEYS", engine.names().join(" ").into());
    if let Some(path) = run.fly_toml {
        put(&mut env, "WB_FLY_TOML", path.as_os_str().to_owned());
    }
    for name in APP_BUILD_PASSTHROUGH.iter().copied() {
        if let Some(value) = set(name) {
            put(&mut env, name, value);
        }
    }
    for name in run.passthrough {
        if env.iter().any(|(n, _)| n == name) {
            continue;
        }
        if let Some(value) = set(name) {
            put(&mut env, name, value);
        }
    }
    Ok(env)
}

/// `sealed_env` with the kit's own process environment as the caller.
pub fn sealed_env_from_process(
    d: &Deployment,
    engine: &EngineEnv,
    run: &RecipeRun,
) -> Result<Vec<(String, OsString)>, String> {
    sealed_env(d, engine, run, &|name| std::env::var_os(name))
}

// ------------------------------------------------------------------ signals ---

struct Signals {
    int: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
}

/// Registers (once) flag handlers for SIGINT and SIGTERM, so that from the first recipe
/// run on the kit records these signals instead of dying of them. Handlers, unlike
/// SIG_IGN, are reset by exec: the recipe keeps the default behaviour.
fn signals() -> &'static Signals {
    static CELL: OnceLock<Signals> = OnceLock::new();
    CELL.get_or_init(|| {
        let s = Signals {
            int: Arc::new(AtomicBool::new(false)),
            term: Arc::new(AtomicBool::new(false)),
        };
        // A failed registration leaves the default: the kit may then die with the
        // recipe, and the next run sweeps what it left (see `sweep_stale_temp_dirs`).
        let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&s.int));
        let _ = signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&s.term));
        s
    })
}

/// Whether the kit received SIGINT or SIGTERM since its first recipe run.
pub fn interrupted() -> bool {
    let s = signals();
    s.int.load(Ordering::SeqCst) || s.term.load(Ordering::SeqCst)
}

/// The exit code for an interrupted kit: 130 for SIGINT, 143 for SIGTERM.
pub fn interrupted_code() -> i32 {
    if signals().term.load(Ordering::SeqCst) {
        143
    } else {
        130
    }
}

// ---------------------------------------------------------------- temp dirs ---

const TEMP_PREFIX: &str = "wb-kit-";

/// A private (0700) directory under the system temp dir (`$TMPDIR`, else `/tmp`), named
/// `wb-kit-<pid>-<random>`, removed with everything in it when dropped.
#[derive(Debug)]
pub struct PrivateTemp {
    path: PathBuf,
}

impl PrivateTemp {
    pub fn new() -> Result<PrivateTemp, String> {
        use std::os::unix::fs::DirBuilderExt;
        let root = std::env::temp_dir();
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| format!("no randomness for a temp dir: {e}"))?;
        let path = root.join(format!(
            "{TEMP_PREFIX}{}-{}",
            std::process::id(),
            crate::state::hex(&random)
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| format!("cannot create a private temp dir {}: {e}", path.display()))?;
        Ok(PrivateTemp { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a file (0600) inside the directory.
    pub fn write(&self, name: &str, text: &str) -> Result<PathBuf, String> {
        let path = self.path.join(name);
        crate::state::atomic_write(&path, text.as_bytes(), 0o600)?;
        Ok(path)
    }
}

impl Drop for PrivateTemp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Removes `wb-kit-<pid>-*` directories in the temp dir whose process is gone (a kit
/// killed with SIGKILL cannot clean up; the next run does).
pub fn sweep_stale_temp_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else {
            continue;
        };
        let Some(Ok(pid)) = rest.split('-').next().map(str::parse::<u32>) else {
            continue;
        };
        let alive = Path::new(&format!("/proc/{pid}")).exists();
        let ours = std::fs::symlink_metadata(entry.path())
            .is_ok_and(|m| m.is_dir() && std::os::unix::fs::MetadataExt::uid(&m) == own_uid());
        if !alive && ours && pid != std::process::id() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// This process's uid, read from a file it just made (std has no `getuid`).
fn own_uid() -> u32 {
    static UID: OnceLock<u32> = OnceLock::new();
    *UID.get_or_init(|| {
        std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap_or(u32::MAX)
    })
}

// -------------------------------------------------------------------- spawn ---

/// Where the recipe's stdout goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdout {
    /// To the kit's stdout, live (human mode).
    Forward,
    /// To the kit's stderr, live (`--json`: stdout holds only the JSON object).
    ToStderr,
    /// Captured only, as is stderr (a read-only probe).
    Quiet,
}

/// A finished recipe run.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The recipe's exit code, or 128 + N when signal N ended it.
    pub code: i32,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Its stderr, for [`Stdout::Quiet`] runs only (otherwise it went to the terminal).
    pub stderr: String,
}

impl Finished {
    /// The URL from the last `url: …` line on stdout.
    pub fn url(&self) -> Option<&str> {
        self.stdout
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("url: "))
            .map(str::trim)
            .filter(|u| !u.is_empty())
    }
}

/// Runs `bash <bootstrap>` with exactly `env`, waits for it (surviving SIGINT/SIGTERM,
/// forwarding a SIGTERM the kit alone received), and returns its code and stdout.
pub fn run(
    bootstrap: &Path,
    env: Vec<(String, OsString)>,
    stdout: Stdout,
) -> Result<Finished, String> {
    use duct::unix::HandleExt;

    let sig = signals();
    if interrupted() {
        return Ok(Finished {
            code: interrupted_code(),
            stdout: String::new(),
            stderr: String::new(),
        });
    }
    let (reader, writer) =
        std::io::pipe().map_err(|e| format!("cannot make a pipe for the recipe: {e}"))?;
    let mut expr = duct::cmd("bash", [bootstrap.as_os_str()])
        .full_env(env)
        .stdin_null()
        .stdout_file(writer)
        .unchecked();
    if stdout == Stdout::Quiet {
        expr = expr.stderr_capture();
    }
    let handle = expr
        .start()
        .map_err(|e| format!("cannot run bash (is it installed?): {e}"))?;
    // The expression holds the pipe's write end: drop it so EOF comes when the recipe
    // (and anything it left holding stdout) is gone.
    drop(expr);

    let (tx, rx) = mpsc::channel::<Option<Vec<u8>>>();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let _ = match stdout {
                        Stdout::Forward => {
                            let mut out = std::io::stdout().lock();
                            out.write_all(&line).and_then(|_| out.flush())
                        }
                        Stdout::ToStderr => std::io::stderr().write_all(&line),
                        Stdout::Quiet => Ok(()),
                    };
                    if tx.send(Some(line)).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = tx.send(None);
    });

    let mut forwarded = false;
    let output = loop {
        match handle.wait_timeout(Duration::from_millis(100)) {
            Ok(Some(output)) => break output.clone(),
            Ok(None) => {
                if sig.term.load(Ordering::SeqCst) && !forwarded {
                    let _ = handle.send_signal(signal_hook::consts::SIGTERM);
                    forwarded = true;
                }
            }
            Err(e) => return Err(format!("waiting for the recipe failed: {e}")),
        }
    };

    // Collect stdout until EOF; a background process the recipe left behind may hold
    // the pipe open, so do not wait for it for long.
    let mut bytes = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(Some(line)) => bytes.extend_from_slice(&line),
            Ok(None) | Err(_) => break,
        }
    }
    let code = exit_code(&output.status);
    Ok(Finished {
        code,
        stdout: String::from_utf8_lossy(&bytes).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// The exit code a shell would report: the code, or 128 + the signal.
pub fn exit_code(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::Place;
    use crate::engine_env::{EnvValue, engine_env};
    use crate::secrets::{DeployEnv, Secret};

    fn cloud() -> Deployment {
        let mut d = Deployment::new("t", Place::Cloud);
        d.app = Some("wb-t".into());
        d.region = Some("iad".into());
        d.secrets = vec!["STRIPE_API_KEY".into()];
        d
    }

    #[test]
    fn passthrough_header_is_read_from_the_top_comments_only() {
        let script = "#!/usr/bin/env bash\n# wb-passthrough: FLY_API_TOKEN FLY_ACCESS_TOKEN\n#\nset -e\n# wb-passthrough: LATE\n";
        assert_eq!(
            passthrough_names(script).unwrap(),
            ["FLY_API_TOKEN", "FLY_ACCESS_TOKEN"]
        );
        for bad in [
            "PATH",
            "WB_HOME",
            "BASH_ENV",
            "LD_PRELOAD",
            "lower",
            "UPDATE",
        ] {
            assert!(passthrough_names(&format!("# wb-passthrough: {bad}\n")).is_err());
        }
    }

    #[test]
    fn sealed_env_holds_only_the_allowlist() {
        let d = cloud();
        let denv = DeployEnv::new(
            [("STRIPE_API_KEY".to_string(), "s=k \"x\"\ny".to_string())],
            std::iter::empty(),
        );
        let engine = engine_env(&d, &denv);
        let pass = vec!["FLY_API_TOKEN".to_string()];
        let run = RecipeRun {
            action: "up",
            providers_dir: Path::new("/r"),
            fly_toml: Some(Path::new("/t/fly.toml")),
            passthrough: &pass,
        };
        let caller = |name: &str| match name {
            "PATH" => Some("/bin".into()),
            "FLY_API_TOKEN" => Some("tok".into()),
            "LEAK" => Some("no".into()),
            _ => None,
        };
        let env = sealed_env(&d, &engine, &run, &caller).unwrap();
        let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
        assert!(!names.contains(&"LEAK") && !names.contains(&"HOME"));
        assert_eq!(names.iter().filter(|n| **n == "WB_APP_NAME").count(), 1);
        let get = |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(get("STRIPE_API_KEY").unwrap(), "s=k \"x\"\ny");
        assert_eq!(get("FLY_API_TOKEN").unwrap(), "tok");
        assert_eq!(
            get("WB_ENGINE_KEYS").unwrap(),
            engine.names().join(" ").as_str()
        );
    }

    #[test]
    fn a_provider_is_never_a_path() {
        assert!(bootstrap_path(Path::new("/r"), "../x").is_err());
        assert!(bootstrap_path(Path::new("/r"), "a/b").is_err());
        assert_eq!(
            bootstrap_path(Path::new("/r"), "fly").unwrap(),
            Path::new("/r/fly/bootstrap.sh")
        );
    }

    #[test]
    fn a_secret_cannot_replace_a_kit_input_or_steer_bash() {
        let d = cloud();
        for name in ["PATH", "BASH_ENV", "WB_PROVIDERS_DIR", "UPDATE"] {
            let engine = EngineEnv(vec![(name.into(), EnvValue::Secret(Secret::new("x")))]);
            let run = RecipeRun {
                action: "up",
                providers_dir: Path::new("/r"),
                fly_toml: None,
                passthrough: &[],
            };
            assert!(sealed_env(&d, &engine, &run, &|_| None).is_err(), "{name}");
        }
    }
}
