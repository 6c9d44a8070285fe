//! The edge: the one place the kit reads the world it was started in — its arguments,
//! the process environment, the working directory, which streams are terminals, and the
//! wall clock. `main` captures it once; everything else receives these values, so the
//! rest of the kit is a function of its inputs (a tidy test keeps `std::env` here).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::SystemTime;

/// The process environment, captured once.
#[derive(Debug, Clone, Default)]
pub struct Vars(BTreeMap<OsString, OsString>);

impl Vars {
    pub fn new(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Vars {
        Vars(vars.into_iter().collect())
    }

    /// A variable's value; an empty value counts as unset (as everywhere in the kit).
    pub fn os(&self, name: &str) -> Option<&OsStr> {
        self.0
            .get(OsStr::new(name))
            .map(OsString::as_os_str)
            .filter(|v| !v.is_empty())
    }

    /// A set, non-empty variable as UTF-8 (`None` when unset, empty or not UTF-8).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.os(name).and_then(OsStr::to_str)
    }

    pub fn is_set(&self, name: &str) -> bool {
        self.os(name).is_some()
    }

    /// Whether a variable is set but its value is not UTF-8 (so `get` would hide it).
    pub fn is_not_utf8(&self, name: &str) -> bool {
        self.os(name).is_some_and(|v| v.to_str().is_none())
    }

    /// Every variable whose name and value are UTF-8.
    pub fn utf8(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.0
            .iter()
            .filter_map(|(k, v)| Some((k.to_str()?.to_string(), v.to_str()?.to_string())))
    }

    /// The UTF-8 names of variables whose values are not UTF-8.
    pub fn not_utf8_names(&self) -> impl Iterator<Item = String> + '_ {
        self.0
            .iter()
            .filter(|(_, v)| !v.is_empty() && v.to_str().is_none())
            .filter_map(|(k, _)| k.to_str().map(str::to_string))
    }

    /// The directories of `PATH`, in order.
    pub fn path_dirs(&self) -> Vec<PathBuf> {
        self.0
            .get(OsStr::new("PATH"))
            .map(|p| std::env::split_paths(p).collect())
            .unwrap_or_default()
    }

    /// The first executable file named `tool` on `PATH`.
    pub fn which(&self, tool: &str) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        self.path_dirs()
            .into_iter()
            .map(|d| d.join(tool))
            .find(|p| {
                p.metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    }
}

/// Everything the kit reads from the world it runs in.
#[derive(Debug, Clone)]
pub struct Edge {
    /// Arguments after the program name.
    pub args: Vec<OsString>,
    /// The name the kit was invoked by (`wb-deploy`, or `cargo xtask deploy`).
    pub program: String,
    pub vars: Vars,
    pub cwd: PathBuf,
    /// The running executable (to find the repository when run from `target/`).
    pub exe: Option<PathBuf>,
    /// Where private temp dirs go (`$TMPDIR`, else `/tmp`).
    pub temp: PathBuf,
    pub stdin_tty: bool,
    pub stderr_tty: bool,
    /// `NO_COLOR` set and non-empty (https://no-color.org).
    pub no_color: bool,
    /// The wall clock at start: the time every record of this run carries.
    pub now: SystemTime,
}

impl Edge {
    /// Reads the world, once.
    pub fn capture() -> Edge {
        use std::io::IsTerminal;
        let mut args = std::env::args_os();
        let argv0 = args.next().unwrap_or_default();
        let vars = Vars::new(std::env::vars_os());
        let program = program_name(&argv0);
        Edge {
            args: args.collect(),
            program,
            no_color: vars.is_set("NO_COLOR"),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            exe: std::env::current_exe().ok(),
            temp: std::env::temp_dir(),
            stdin_tty: std::io::stdin().is_terminal(),
            stderr_tty: std::io::stderr().is_terminal(),
            now: SystemTime::now(),
            vars,
        }
    }

    /// An edge for tests and embedding: the given environment, no terminals.
    pub fn with_vars(args: Vec<OsString>, vars: Vars, cwd: PathBuf) -> Edge {
        Edge {
            args,
            program: "cargo xtask deploy".into(),
            no_color: vars.is_set("NO_COLOR"),
            temp: vars
                .os("TMPDIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/tmp")),
            exe: None,
            stdin_tty: false,
            stderr_tty: false,
            now: SystemTime::now(),
            vars,
            cwd,
        }
    }
}

/// How messages name the kit: the standalone binary by its own name, the in-repo form
/// (`target/*/xtask`, run by the cargo alias) as `cargo xtask deploy`.
fn program_name(argv0: &OsStr) -> String {
    let base = std::path::Path::new(argv0)
        .file_name()
        .and_then(OsStr::to_str)
        .unwrap_or("xtask");
    if base == "xtask" {
        "cargo xtask deploy".to_string()
    } else {
        base.to_string()
    }
}
