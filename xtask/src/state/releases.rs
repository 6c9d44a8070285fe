//! Releases (SPEC §14, §18): each apply that changed something appends one to
//! `<state dir>/releases.json` — the last 20 are kept, written atomically (0600). The
//! newest release is the last-applied record (one record, not two): `applied: false`
//! marks a deployment whose provider state is in flux (an `up` under way or failed, or
//! after `down`), so the next `plan` says everything changes.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::core::plan::{Applied, Fingerprint};

const FILE: &str = "releases.json";
const LEGACY: &str = "last-applied.json";
/// How many releases are kept.
pub const KEPT: usize = 20;

/// One release. Values are never stored: the engine env appears as names with salted
/// digests (the `env:NAME` parts of the fingerprint).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Release {
    pub number: u32,
    /// RFC 3339, UTC, from the edge's clock.
    pub time: String,
    /// `apply` or `rollback`.
    pub action: String,
    /// For a rollback: the release it re-applied.
    pub rollback_to: Option<u32>,
    /// The image reference the deployment named.
    pub image: String,
    /// What the place reports it as: a container image ID, `path sha256:…` of a process
    /// backend's engine binary, the provider's deployed image.
    pub image_id: Option<String>,
    /// How many instances the place reported right after the apply, when it did.
    pub instances: Option<u64>,
    pub applied: Applied,
    /// Rendered artifacts by file name (`fly.toml`, …).
    pub artifacts: BTreeMap<String, String>,
    pub kit_version: String,
    /// The base deployment of a preview.
    pub preview_of: Option<String>,
}

impl Release {
    /// A release of `d` as applied now: an `apply` (a rollback sets its own fields).
    pub fn now(
        edge: &crate::edge::Edge,
        d: &crate::core::deployment::Deployment,
        applied: Applied,
        image_id: Option<String>,
        artifacts: BTreeMap<String, String>,
    ) -> Release {
        let since = edge
            .now
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Release {
            number: 0,
            time: rfc3339(since),
            action: "apply".into(),
            rollback_to: None,
            image: d.image.clone(),
            image_id,
            instances: None,
            applied,
            artifacts,
            kit_version: env!("CARGO_PKG_VERSION").into(),
            preview_of: None,
        }
    }

    /// The engine env's names with their salted digests.
    pub fn env(&self) -> BTreeMap<String, String> {
        self.applied
            .intended
            .parts
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("env:")?.to_string(), v.clone())))
            .collect()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "number": self.number,
            "time": self.time,
            "action": self.action,
            "rollback_to": self.rollback_to,
            "image": self.image,
            "image_id": self.image_id,
            "instances": self.instances,
            "env": self.env(),
            "artifacts": self.artifacts,
            "kit_version": self.kit_version,
            "preview_of": self.preview_of,
            "fingerprint": {
                "intended": self.applied.intended.parts,
                "resolved": self.applied.resolved.parts,
            },
        })
    }

    fn from_json(v: &Value) -> Option<Release> {
        let parts = |v: &Value| -> Option<Fingerprint> {
            Some(Fingerprint {
                parts: serde_json::from_value(v.clone()).ok()?,
            })
        };
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Some(Release {
            number: u32::try_from(v.get("number")?.as_u64()?).ok()?,
            time: text("time")?,
            action: text("action")?,
            rollback_to: v
                .get("rollback_to")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok()),
            image: text("image")?,
            image_id: text("image_id"),
            instances: v.get("instances").and_then(Value::as_u64),
            applied: Applied {
                intended: parts(&v["fingerprint"]["intended"])?,
                resolved: parts(&v["fingerprint"]["resolved"]).unwrap_or_default(),
            },
            artifacts: serde_json::from_value(v.get("artifacts")?.clone()).ok()?,
            kit_version: text("kit_version")?,
            preview_of: text("preview_of"),
        })
    }
}

/// The file as read: whether the newest release is what runs, and the releases.
struct Book {
    applied: bool,
    /// `down` stopped what was applied from this machine (and no apply since): `plan`
    /// says "start again", not "never applied".
    stopped: bool,
    releases: Vec<Release>,
}

fn read(dir: &Path) -> Option<Book> {
    let text = std::fs::read_to_string(dir.join(FILE)).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    Some(Book {
        applied: v.get("applied").and_then(Value::as_bool).unwrap_or(false),
        stopped: v.get("stopped").and_then(Value::as_bool).unwrap_or(false),
        releases: v
            .get("releases")?
            .as_array()?
            .iter()
            .filter_map(Release::from_json)
            .collect(),
    })
}

fn write(dir: &Path, book: &Book) -> Result<(), String> {
    let v = json!({
        "applied": book.applied,
        "stopped": book.stopped,
        "releases": book.releases.iter().map(Release::to_json).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&v).expect("JSON values serialize") + "\n";
    super::atomic_write(&dir.join(FILE), text.as_bytes(), 0o600)
}

/// The releases on record, oldest first.
pub fn list(dir: &Path) -> Vec<Release> {
    read(dir).map(|b| b.releases).unwrap_or_default()
}

/// Appends `release` (numbered here: one more than the newest), keeps the last
/// [`KEPT`], and marks it applied. Returns its number.
pub fn append(dir: &Path, mut release: Release) -> Result<u32, String> {
    let mut book = read(dir).unwrap_or(Book {
        applied: false,
        stopped: false,
        releases: Vec::new(),
    });
    release.number = book.releases.last().map_or(1, |r| r.number + 1);
    if let Ok(base) = std::fs::read_to_string(dir.join("preview-of")) {
        release.preview_of = Some(base.trim().to_string());
    }
    let number = release.number;
    book.releases.push(release);
    let extra = book.releases.len().saturating_sub(KEPT);
    book.releases.drain(..extra);
    book.applied = true;
    book.stopped = false;
    write(dir, &book)?;
    remove_legacy(dir)?;
    Ok(number)
}

/// The record of the last successful apply: the newest release while it is applied
/// (a record from before releases existed is still read).
pub fn last_applied(dir: &Path) -> Option<Applied> {
    match read(dir) {
        Some(book) if book.applied => book.releases.last().map(|r| r.applied.clone()),
        Some(_) => None,
        None => legacy(dir),
    }
}

/// The newest release while it is what runs.
pub fn current(dir: &Path) -> Option<Release> {
    read(dir)
        .filter(|b| b.applied)
        .and_then(|b| b.releases.last().cloned())
}

/// Marks the newest release as no longer what runs (kept in the history).
pub fn forget_applied(dir: &Path) -> Result<(), String> {
    if let Some(mut book) = read(dir)
        && book.applied
    {
        book.applied = false;
        write(dir, &book)?;
    }
    remove_legacy(dir)
}

/// `down` stopped what was applied: like [`forget_applied`], and remembered, so `plan`
/// says "start again" (until the next apply records a release).
pub fn stop(dir: &Path) -> Result<(), String> {
    let was_applied = last_applied(dir).is_some();
    let book = read(dir);
    forget_applied(dir)?;
    if was_applied {
        let mut book = read(dir).or(book).unwrap_or(Book {
            applied: false,
            stopped: false,
            releases: Vec::new(),
        });
        book.applied = false;
        book.stopped = true;
        write(dir, &book)?;
    }
    Ok(())
}

/// Whether `down` stopped the deployment and no apply has recorded anything since.
pub fn is_stopped(dir: &Path) -> bool {
    read(dir).is_some_and(|b| b.stopped && !b.applied)
}

fn remove_legacy(dir: &Path) -> Result<(), String> {
    match std::fs::remove_file(dir.join(LEGACY)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("cannot remove the last-applied record: {e}"))
        }
        _ => Ok(()),
    }
}

/// `last-applied.json` of kits before releases.
fn legacy(dir: &Path) -> Option<Applied> {
    let text = std::fs::read_to_string(dir.join(LEGACY)).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let parts = |v: Option<&Value>| -> Option<Fingerprint> {
        let parts = serde_json::from_value(v?.clone()).ok()?;
        Some(Fingerprint { parts })
    };
    match v.get("intended") {
        Some(_) => Some(Applied {
            intended: parts(v.get("intended"))?,
            resolved: parts(v.get("resolved")).unwrap_or_default(),
        }),
        None => Some(Applied {
            intended: parts(Some(&v))?,
            resolved: Fingerprint::default(),
        }),
    }
}

/// RFC 3339 (UTC, seconds) of a time since the epoch.
pub fn rfc3339(since_epoch: std::time::Duration) -> String {
    let secs = since_epoch.as_secs();
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The release `rollback --to N` means (default: the one before the newest).
pub fn pick(list: &[Release], to: Option<u32>) -> Result<Release, String> {
    let Some(newest) = list.last() else {
        return Err("no releases on record — nothing to roll back to (apply first)".into());
    };
    let wanted = match to {
        Some(n) => n,
        None if list.len() < 2 => {
            return Err(format!(
                "only one release on record ({}) — nothing earlier to roll back to",
                newest.number
            ));
        }
        None => list[list.len() - 2].number,
    };
    list.iter()
        .find(|r| r.number == wanted)
        .cloned()
        .ok_or_else(|| {
            format!(
                "no release {wanted} on record — the kept releases are {}–{} (see `releases`)",
                list[0].number, newest.number
            )
        })
}

/// The engine variables whose salted digest differs between release `then` and the
/// fingerprint of today's intent (added, changed or removed), by name.
pub fn changed_env(then: &Release, now: &Fingerprint) -> Vec<String> {
    let before = then.env();
    let after: BTreeMap<String, String> = now
        .parts
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("env:")?.to_string(), v.clone())))
        .collect();
    let mut names: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|n| before.get(*n) != after.get(*n))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Marks the newest release as a rollback to `to` of `image` (the local place records
/// it through its ordinary apply first).
pub fn mark_rollback(dir: &Path, to: u32, image: &str) -> Result<(), String> {
    let Some(mut book) = read(dir) else {
        return Ok(());
    };
    if let Some(last) = book.releases.last_mut() {
        last.action = "rollback".into();
        last.rollback_to = Some(to);
        last.image = image.to_string();
    }
    write(dir, &book)
}

/// Warns, naming each engine variable whose value differs from `target`'s: a rollback
/// runs with today's values.
pub fn warn_changed(report: &dyn crate::report::Report, target: &Release, changed: &[String]) {
    for name in changed {
        report.warn(&format!(
            "{name} differs from release {} — the rollback uses today's value",
            target.number
        ));
    }
}
