//! The sealed spawn (SPEC §7.4): how the kit runs a provider recipe.
//!
//! `bash <root>/<provider>/bootstrap.sh` through duct, with a CLEARED environment that
//! holds only what [`sealed_env`] computes — a pure function, so tests can compare it
//! with the spine — and stdin from `/dev/null`. Output streams live; the recipe's exit
//! code (128 + N when a signal ended it) is what the caller passes on.
//!
//! While a recipe runs the kit does not die of SIGINT or SIGTERM ([`signals`]). The
//! recipe runs in its own process group (recorded in the deployment's lock, see
//! `state::lock`); the kit forwards SIGINT and SIGTERM to that whole group, waits for
//! it to end (SIGKILL after 5 s), removes its private temp directory ([`PrivateTemp`])
//! and exits 130/143.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::Duration;

use super::sealed::SealedEnv;
use crate::core::plan::hex;

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

/// From now on, SIGINT and SIGTERM are recorded instead of ending the kit (a local
/// apply calls this first, so an interrupted start is stopped and reported).
pub fn catch_signals() {
    signals();
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
    pub fn new(root: &Path) -> Result<PrivateTemp, String> {
        use std::os::unix::fs::DirBuilderExt;
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| format!("no randomness for a temp dir: {e}"))?;
        let path = root.join(format!(
            "{TEMP_PREFIX}{}-{}",
            std::process::id(),
            hex(&random)
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| format!("cannot create a private temp dir {}: {e}", path.display()))?;
        crate::state::lock::note_temp(&path, true);
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
        crate::state::lock::note_temp(&self.path, false);
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Removes `wb-kit-<pid>-*` directories in the temp dir whose process is gone (a kit
/// killed with SIGKILL cannot clean up; the next run does) — unless the recipe that
/// used it still runs (its process group, recorded in `.pgid`, lives on).
pub fn sweep_stale_temp_dirs(temp: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else {
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
        if !alive
            && ours
            && pid != std::process::id()
            && !crate::state::lock::temp_in_use(&entry.path())
        {
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
    /// To the kit's stderr, live, but for the lines the kit reads and repeats
    /// (`kept:`, `destroyed:`): progress, without saying anything twice.
    Progress,
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
pub fn run(bootstrap: &Path, env: SealedEnv, stdout: Stdout) -> Result<Finished, String> {
    signals();
    if interrupted() {
        return Ok(Finished {
            code: interrupted_code(),
            stdout: String::new(),
            stderr: String::new(),
        });
    }
    let (reader, writer) =
        std::io::pipe().map_err(|e| format!("cannot make a pipe for the recipe: {e}"))?;
    let mut expr = env
        .into_expression("bash", &[bootstrap.as_os_str()])
        // Its own process group: the kit signals the whole group, and the lock knows
        // which processes are the recipe's even after the kit is gone.
        .before_spawn(|cmd| {
            std::os::unix::process::CommandExt::process_group(cmd, 0);
            Ok(())
        })
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
    let pgid = handle.pids().first().copied();
    if let Some(pgid) = pgid {
        crate::state::lock::started_group(pgid);
    }

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
                        Stdout::Progress if is_report(&line) => Ok(()),
                        Stdout::Progress => std::io::stderr().write_all(&line),
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
                if interrupted() && !forwarded {
                    forward(&handle, pgid, interrupted_code() - 128);
                    forwarded = true;
                }
            }
            Err(e) => return Err(format!("waiting for the recipe failed: {e}")),
        }
    };
    if forwarded && let Some(pgid) = pgid {
        drain_group(pgid);
    }

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

/// Sends `signal` to the recipe's whole process group (its CLIs too), else to bash.
fn forward(handle: &duct::Handle, pgid: Option<u32>, signal: i32) {
    use duct::unix::HandleExt;
    match pgid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) on a process group the kit created; no memory involved.
        Some(pgid) if pgid > 1 => unsafe {
            libc::kill(-pgid, signal);
        },
        _ => {
            let _ = handle.send_signal(signal);
        }
    }
}

/// After an interrupted recipe ended: give what is left of its group 5 s to end, then
/// SIGKILL it, so that nothing of it mutates after the kit released the lock.
fn drain_group(pgid: u32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while crate::state::lock::group_alive(pgid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if crate::state::lock::group_alive(pgid)
        && let Ok(pgid) = i32::try_from(pgid)
    {
        // SAFETY: as in `forward`.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// A line of recipe output the kit reads and repeats itself.
fn is_report(line: &[u8]) -> bool {
    line.starts_with(b"kept:") || line.starts_with(b"destroyed:")
}

/// The exit code a shell would report: the code, or 128 + the signal.
pub fn exit_code(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}
