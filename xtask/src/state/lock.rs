//! One mutating verb at a time per deployment (SPEC §14, §18 "…lock").
//!
//! The lock is an `flock` on `<state dir>/apply.lock` held by the kit, plus a record in
//! that file: the kit's pid and, once a recipe runs, the recipe's process group (the
//! recipe runs in its own group, see `providers::spawn`). A kit killed with SIGKILL
//! loses its `flock`, but its recipe may live on (re-parented to init) and keep
//! mutating: so the next mutating verb also refuses — or waits, with `--lock-wait` —
//! while any process of the recorded group lives, and proceeds with a warning once the
//! group is empty. A clean release empties the record.
//!
//! Every spawned recipe's group is also written into the private temp dirs alive at
//! that moment (`.pgid`), so the temp sweep never removes a live recipe's files.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lock files and temp dirs that learn the group of each recipe spawned while they are
/// held (a process-wide list: a recipe is spawned deep below the verb that locked).
static NOTES: Mutex<Vec<Note>> = Mutex::new(Vec::new());

#[derive(Clone, PartialEq, Eq)]
enum Note {
    Lock(PathBuf),
    Temp(PathBuf),
}

/// What a lock file says about its holder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub pid: Option<u32>,
    pub pgid: Option<u32>,
}

impl Record {
    fn parse(text: &str) -> Record {
        let mut record = Record::default();
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("pid", v)) => record.pid = v.trim().parse().ok(),
                Some(("pgid", v)) => record.pgid = v.trim().parse().ok(),
                _ => {}
            }
        }
        record
    }

    fn text(&self) -> String {
        let mut text = String::new();
        if let Some(pid) = self.pid {
            text.push_str(&format!("pid {pid}\n"));
        }
        if let Some(pgid) = self.pgid {
            text.push_str(&format!("pgid {pgid}\n"));
        }
        text
    }
}

/// Whether any process of group `pgid` lives (a zombie counts until it is reaped).
pub fn group_alive(pgid: u32) -> bool {
    let Ok(pgid) = i32::try_from(pgid) else {
        return false;
    };
    if pgid <= 1 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks the group exists.
    let rc = unsafe { libc::kill(-pgid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The held lock of one deployment; released (record emptied) on drop.
pub struct ApplyLock {
    file: File,
    path: PathBuf,
}

/// Why the lock is not free now.
enum Busy {
    Kit(Option<u32>),
    Orphan(Record),
}

impl ApplyLock {
    /// Takes the lock, waiting up to `wait` (zero: refuse at once). `warn` hears about a
    /// holder that was killed (its group is empty now).
    pub fn acquire(path: &Path, wait: Duration, warn: &dyn Fn(&str)) -> Result<ApplyLock, String> {
        let deadline = Instant::now() + wait;
        loop {
            let busy = match ApplyLock::try_take(path, warn)? {
                Ok(lock) => return Ok(lock),
                Err(busy) => busy,
            };
            if Instant::now() >= deadline {
                return Err(refusal(path, &busy, wait));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn try_take(path: &Path, warn: &dyn Fn(&str)) -> Result<Result<ApplyLock, Busy>, String> {
        let mut file = super::open_lock_file(path)?;
        let mut text = String::new();
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let _ = file.read_to_string(&mut text);
                return Ok(Err(Busy::Kit(Record::parse(&text).pid)));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", path.display()));
            }
        }
        let _ = file.read_to_string(&mut text);
        let left = Record::parse(&text);
        if let Some(pgid) = left.pgid
            && group_alive(pgid)
        {
            return Ok(Err(Busy::Orphan(left)));
        }
        if let Some(pid) = left.pid {
            warn(&format!(
                "a previous run (pid {pid}) ended without releasing {} — it was killed; {} — proceeding",
                path.display(),
                match left.pgid {
                    Some(g) => format!("its recipe's process group {g} has ended"),
                    None => "no recipe of it is running".to_string(),
                }
            ));
        }
        let mut lock = ApplyLock {
            file,
            path: path.to_path_buf(),
        };
        lock.write(&Record {
            pid: Some(std::process::id()),
            pgid: None,
        })?;
        note(Note::Lock(lock.path.clone()), true);
        Ok(Ok(lock))
    }

    fn write(&mut self, record: &Record) -> Result<(), String> {
        let text = record.text();
        (|| {
            self.file.set_len(0)?;
            self.file.seek(SeekFrom::Start(0))?;
            self.file.write_all(text.as_bytes())?;
            self.file.sync_data()
        })()
        .map_err(|e| format!("cannot write lock {}: {e}", self.path.display()))
    }
}

impl Drop for ApplyLock {
    fn drop(&mut self) {
        note(Note::Lock(self.path.clone()), false);
        let _ = self.write(&Record::default());
    }
}

fn refusal(path: &Path, busy: &Busy, wait: Duration) -> String {
    let waited = if wait.is_zero() {
        "pass --lock-wait SECONDS to wait for it".to_string()
    } else {
        format!("waited {}s (--lock-wait)", wait.as_secs())
    };
    match busy {
        Busy::Kit(pid) => format!(
            "another run of this deployment holds {} ({}) — {waited}; nothing was changed",
            path.display(),
            pid.map(|p| format!("pid {p}"))
                .unwrap_or_else(|| "pid unknown".into())
        ),
        Busy::Orphan(r) => format!(
            "the recipe of a killed run (pid {}) still runs as process group {} — {waited}, or stop it with `kill -TERM -{}`; nothing was changed",
            r.pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
            r.pgid.unwrap_or(0),
            r.pgid.unwrap_or(0),
        ),
    }
}

fn note(what: Note, add: bool) {
    let mut notes = NOTES.lock().unwrap_or_else(|e| e.into_inner());
    if add {
        notes.push(what);
    } else if let Some(i) = notes.iter().position(|n| *n == what) {
        notes.remove(i);
    }
}

/// Registers a private temp dir: each recipe spawned while it exists writes its group
/// into `<dir>/.pgid`.
pub fn note_temp(dir: &Path, add: bool) {
    note(Note::Temp(dir.to_path_buf()), add);
}

/// Called right after a recipe started in its own group `pgid`: every held lock and
/// every registered temp dir records it.
pub fn started_group(pgid: u32) {
    let notes = NOTES.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for n in notes {
        match n {
            Note::Lock(path) => {
                let record = Record {
                    pid: Some(std::process::id()),
                    pgid: Some(pgid),
                };
                // Written in place: the flock is on this inode.
                if let Ok(mut f) = OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                {
                    let text = record.text();
                    let _ = f.set_len(0);
                    let _ = f.write_all(text.as_bytes());
                    let _ = f.sync_data();
                }
            }
            Note::Temp(dir) => {
                let _ = super::atomic_write(&dir.join(".pgid"), pgid.to_string().as_bytes(), 0o600);
            }
        }
    }
}

/// Whether a temp dir's recorded recipe group still lives.
pub fn temp_in_use(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join(".pgid"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .is_some_and(group_alive)
}
