//! State on disk: the app dir, one directory per deployment, atomic writes, locks, and the
//! fingerprint of what was last applied. See SPEC §8 "State on disk".

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// `$WB_HOME`, else the platform's data dir for the kit (XDG on Linux, Application
/// Support on macOS).
pub fn app_dir() -> Result<PathBuf, String> {
    if let Some(home) = std::env::var_os("WB_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    directories::ProjectDirs::from("sh", "workbooks", "deploy-kit")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .ok_or_else(|| "cannot find a home directory for the kit's state — set WB_HOME".to_string())
}

/// The state directory of one deployment (`<app dir>/<id>`), created 0700 on demand.
/// `id` has been validated (`^[a-z0-9][a-z0-9-]*$`), so it is one path component.
pub fn deployment_dir(id: &str) -> Result<PathBuf, String> {
    let dir = app_dir()?.join(id);
    ensure_private_dir(&dir)?;
    Ok(dir)
}

/// The state directory of one deployment, without creating it (read-only verbs).
pub fn deployment_dir_path(id: &str) -> Result<PathBuf, String> {
    Ok(app_dir()?.join(id))
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
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
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
        if let Some(dir) = path.parent() {
            ensure_private_dir(dir)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("cannot open lock {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(FileLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
        }
    }
}

/// What was applied, as comparable parts: `image`, `env:NAME` (value hashed with a
/// per-deployment salt, never stored), `fly.toml`, `provider`, `recipe`, `backend`, …
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint {
    pub parts: BTreeMap<String, String>,
}

impl Fingerprint {
    pub fn put(&mut self, part: impl Into<String>, value: &str, salt: &[u8]) {
        let mut h = Sha256::new();
        h.update(salt);
        h.update(value.as_bytes());
        self.parts.insert(part.into(), hex(&h.finalize()));
    }

    /// The parts that differ from `before`, each as `added`, `removed` or `changed`.
    pub fn diff(&self, before: &Fingerprint) -> Vec<(String, &'static str)> {
        let mut out = Vec::new();
        for (part, value) in &self.parts {
            match before.parts.get(part) {
                None => out.push((part.clone(), "added")),
                Some(old) if old != value => out.push((part.clone(), "changed")),
                Some(_) => {}
            }
        }
        for part in before.parts.keys() {
            if !self.parts.contains_key(part) {
                out.push((part.clone(), "removed"));
            }
        }
        out
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.parts).expect("a string map serializes")
    }

    pub fn from_json(text: &str) -> Option<Fingerprint> {
        serde_json::from_str(text)
            .ok()
            .map(|parts| Fingerprint { parts })
    }
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

/// The record of the last successful apply (`last-applied.json`), if any.
pub fn last_applied(dir: &Path) -> Option<Fingerprint> {
    Fingerprint::from_json(&fs::read_to_string(dir.join("last-applied.json")).ok()?)
}

pub fn record_applied(dir: &Path, fingerprint: &Fingerprint) -> Result<(), String> {
    atomic_write(
        &dir.join("last-applied.json"),
        fingerprint.to_json().as_bytes(),
        0o600,
    )
}

pub fn forget_applied(dir: &Path) -> Result<(), String> {
    match fs::remove_file(dir.join("last-applied.json")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("cannot remove the last-applied record: {e}"))
        }
        _ => Ok(()),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
