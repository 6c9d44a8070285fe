//! A deployment's secret store on disk (`secrets.env`, 0600, atomic, locked) and the
//! capture of the deploy env from the edge's environment plus that store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::core::secret::{DeployEnv, Secret};
use crate::edge::Vars;
use crate::state;

/// The deploy env: the captured process environment plus the deployment's store.
pub fn capture(vars: &Vars, store: &Store) -> Result<DeployEnv, String> {
    Ok(env_only(vars).with_store(store.load()?))
}

/// The process environment alone (when there is no readable store).
pub fn env_only(vars: &Vars) -> DeployEnv {
    DeployEnv::new(vars.utf8(), std::iter::empty()).with_not_utf8(vars.not_utf8_names())
}

/// A deployment's secret store: `secrets.env` under its state directory, mode 0600,
/// one `NAME=<JSON string>` per line so any value (newlines, quotes, `=`, leading
/// blanks) round-trips exactly.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn at(deployment_dir: &Path) -> Store {
        Store {
            path: deployment_dir.join("secrets.env"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn load(&self) -> Result<BTreeMap<String, Secret>, String> {
        // Every store operation sweeps the plaintext temp copies a killed write left.
        if let Some(dir) = self.path.parent() {
            state::sweep_temp_files(dir);
        }
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(format!(
                    "the secret store {} is a symbolic link — the kit never follows links in its state dir; remove it, then `secrets set` the values again",
                    self.path.display()
                ));
            }
            Ok(meta) if !meta.is_file() => {
                return Err(format!(
                    "the secret store {} is not a regular file — remove it, then `secrets set` the values again",
                    self.path.display()
                ));
            }
            _ => {}
        }
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => {
                return Err(format!(
                    "cannot read the secret store {}: {e}",
                    self.path.display()
                ));
            }
        };
        parse_store(&text).map_err(|line| {
            format!(
                "the secret store {} is damaged at line {line} — fix or delete that line, then `secrets set` it again",
                self.path.display()
            )
        })
    }

    pub fn set(&self, name: &str, value: Secret) -> Result<(), String> {
        self.update(|map| {
            map.insert(name.to_string(), value);
        })
    }

    /// Removes a name; returns whether it was there.
    pub fn unset(&self, name: &str) -> Result<bool, String> {
        let mut removed = false;
        self.update(|map| removed = map.remove(name).is_some())?;
        Ok(removed)
    }

    /// Read-modify-write under the store's lock; the write is atomic.
    fn update(&self, change: impl FnOnce(&mut BTreeMap<String, Secret>)) -> Result<(), String> {
        let dir = self.path.parent().expect("store path has a parent");
        let _lock = state::FileLock::acquire_waiting(
            &dir.join("secrets.lock"),
            std::time::Duration::from_secs(30),
        )?;
        let mut map = self.load()?;
        change(&mut map);
        state::atomic_write(&self.path, render_store(&map).as_bytes(), 0o600)
    }
}

fn render_store(map: &BTreeMap<String, Secret>) -> String {
    let mut out = String::from(
        "# deploy kit secret store — values JSON-quoted; manage with `cargo xtask deploy secrets`\n",
    );
    for (name, value) in map {
        out.push_str(name);
        out.push('=');
        out.push_str(&serde_json::Value::String(value.expose().to_string()).to_string());
        out.push('\n');
    }
    out
}

/// Parses the store; `Err(line)` names the first damaged line.
fn parse_store(text: &str) -> Result<BTreeMap<String, Secret>, usize> {
    let mut map = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, quoted) = line.split_once('=').ok_or(i + 1)?;
        let value: String = serde_json::from_str(quoted).map_err(|_| i + 1)?;
        map.insert(name.to_string(), Secret::new(value));
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_text_round_trips_awkward_values() {
        let mut map = BTreeMap::new();
        for (i, v) in [
            "a=b",
            "  leading",
            "\"quoted\"",
            "-----BEGIN KEY-----\nabc\n-----END KEY-----\n",
            "",
            "é\t\\",
        ]
        .iter()
        .enumerate()
        {
            map.insert(format!("K{i}"), Secret::new(*v));
        }
        assert_eq!(parse_store(&render_store(&map)).unwrap(), map);
    }
}
