//! State on disk: the app dir, one directory per deployment, atomic writes, locks, and the
//! fingerprint of what was last applied. See SPEC §8 "State on disk".

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::core::plan::Applied;
use crate::edge::Vars;

pub mod lock;
pub mod releases;
pub mod store;

pub use lock::ApplyLock;

/// `$WB_HOME`, else the platform's data dir for the kit (XDG on Linux, Application
/// Support on macOS).
pub fn app_dir(vars: &Vars) -> Result<PathBuf, String> {
    if let Some(home) = vars.os("WB_HOME") {
        return Ok(PathBuf::from(home));
    }
    if let Some(home) = vars.os("HOME") {
        if cfg!(target_os = "macos") {
            return Ok(
                PathBuf::from(home).join("Library/Application Support/sh.workbooks.deploy-kit")
            );
        }
        let data = vars
            .os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(home).join(".local/share"));
        return Ok(data.join("deploy-kit"));
    }
    Err("cannot find a home directory for the kit's state — set WB_HOME".to_string())
}

/// Where one deployment keeps its state: `<app dir>/<id>`. The one place a
/// deployment's directory is derived (`id` is a checked slug: one path component).
#[derive(Debug, Clone)]
pub struct Paths {
    pub app_dir: PathBuf,
    pub dir: PathBuf,
}

impl Paths {
    pub fn for_id(app_dir: &Path, id: &str) -> Paths {
        Paths {
            app_dir: app_dir.to_path_buf(),
            dir: app_dir.join(id),
        }
    }

    /// The directory, created 0700.
    pub fn ensure(&self) -> Result<&Path, String> {
        ensure_private_dir(&self.dir)?;
        Ok(&self.dir)
    }

    pub fn store(&self) -> store::Store {
        store::Store::at(&self.dir)
    }

    pub fn lock(&self) -> PathBuf {
        self.dir.join("apply.lock")
    }
}

/// Warnings for state directories other users could write to (a pre-created 0777
/// `WB_HOME/<id>`): anyone who can write there can plant a store or a lock.
pub fn loose_dirs(paths: &Paths) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    [&paths.app_dir, &paths.dir]
        .into_iter()
        .filter_map(|dir| {
            let mode = fs::symlink_metadata(dir).ok()?.permissions().mode() & 0o777;
            (mode & 0o022 != 0).then(|| {
                format!(
                    "the state dir {} is writable by {} (mode {mode:04o}) — another user could plant files there; `chmod 700` it",
                    dir.display(),
                    if mode & 0o002 != 0 { "every user" } else { "its group" }
                )
            })
        })
        .collect()
}

pub fn ensure_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

/// Writes `bytes` to `path` atomically: a temp file in the same directory with `mode`,
/// fsynced, then renamed over the target. A crash leaves the old file or the new one,
/// never half of either; a leftover temp file is swept by [`sweep_temp_files`].
pub fn atomic_write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let dir = path
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", path.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        // A leftover temp file (of a killed run with this pid) is replaced, never
        // reused: its mode or a symlink planted there must not carry over.
        let _ = fs::remove_file(&tmp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok::<(), std::io::Error>(())
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

/// Removes temp files an interrupted write left in `dir` (those of live processes are
/// left alone).
pub fn sweep_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((_, pid)) = name.rsplit_once(".tmp-") else {
            continue;
        };
        let alive = pid
            .parse::<u32>()
            .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if name.starts_with('.') && !alive {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// An exclusive advisory lock on a file, released on drop (or when the process dies).
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Takes the lock, failing at once (not waiting) if another process holds it.
    pub fn acquire(path: &Path) -> Result<FileLock, String> {
        FileLock::try_acquire(path)?.ok_or_else(|| {
            format!(
                "another kit process holds {} — wait for it to finish (or end it) and try again",
                path.display()
            )
        })
    }

    /// Takes the lock, waiting up to `patience` for another process to release it
    /// (short critical sections such as a store update, where queueing beats failing).
    pub fn acquire_waiting(path: &Path, patience: std::time::Duration) -> Result<FileLock, String> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            if let Some(lock) = FileLock::try_acquire(path)? {
                return Ok(lock);
            }
            if std::time::Instant::now() >= deadline {
                return FileLock::acquire(path);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// `Ok(None)` when another process holds the lock.
    fn try_acquire(path: &Path) -> Result<Option<FileLock>, String> {
        let file = open_lock_file(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(FileLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
        }
    }
}

/// Opens (creating 0600) a lock file in a private dir, never through a symlink: a link
/// planted as the lock must not make the kit create its target.
pub fn open_lock_file(path: &Path) -> Result<File, String> {
    if let Some(dir) = path.parent() {
        ensure_private_dir(dir)?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => format!(
                "the lock {} is a symbolic link — the kit never follows links in its state dir; remove it and try again",
                path.display()
            ),
            _ => format!("cannot open lock {}: {e}", path.display()),
        })
}

/// The per-deployment salt for fingerprint hashes, made once (0600).
pub fn salt(dir: &Path) -> Result<Vec<u8>, String> {
    let path = dir.join("salt");
    if let Ok(bytes) = fs::read(&path)
        && bytes.len() == 32
    {
        return Ok(bytes);
    }
    let mut bytes = vec![0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| format!("no randomness for the fingerprint salt: {e}"))?;
    atomic_write(&path, &bytes, 0o600)?;
    Ok(bytes)
}

/// The salt, when one was made (read-only: `plan` never creates state).
pub fn existing_salt(dir: &Path) -> Option<Vec<u8>> {
    fs::read(dir.join("salt")).ok().filter(|b| b.len() == 32)
}

/// The record of the last successful apply: the newest release while it runs.
pub fn last_applied(dir: &Path) -> Option<Applied> {
    releases::last_applied(dir)
}

/// The provider's state is in flux (or gone): no release is what runs any more.
pub fn forget_applied(dir: &Path) -> Result<(), String> {
    releases::forget_applied(dir)
}
