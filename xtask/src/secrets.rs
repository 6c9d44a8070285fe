//! Secrets: a value type that cannot be printed by accident, the per-deployment store,
//! and the deploy env (process env + store, the store wins). See SPEC §8.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::state;

/// A secret value. `Debug` and `Display` print `<redacted>`; only [`Secret::expose`],
/// called where a value is handed to a child process's environment or the store,
/// reveals it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a deploy-env value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Store,
    Env,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Store => "store",
            Source::Env => "env",
        }
    }
}

/// "The deploy env": captured once at the edge, then passed to the pure core as a value.
#[derive(Debug, Clone, Default)]
pub struct DeployEnv {
    vars: BTreeMap<String, (Secret, Source)>,
}

impl DeployEnv {
    /// Builds a deploy env from the process-env side and the store side; the store wins.
    /// Empty values count as unset.
    pub fn new(
        env: impl IntoIterator<Item = (String, String)>,
        store: impl IntoIterator<Item = (String, Secret)>,
    ) -> DeployEnv {
        let mut vars = BTreeMap::new();
        for (name, value) in env {
            if !value.is_empty() {
                vars.insert(name, (Secret(value), Source::Env));
            }
        }
        for (name, value) in store {
            if !value.0.is_empty() {
                vars.insert(name, (value, Source::Store));
            }
        }
        DeployEnv { vars }
    }

    /// The process environment plus the deployment's store.
    pub fn capture(store: &Store) -> Result<DeployEnv, String> {
        let store = store.load()?;
        let mut env = DeployEnv::capture_env_only();
        for (name, value) in store {
            if !value.0.is_empty() {
                env.vars.insert(name, (value, Source::Store));
            }
        }
        Ok(env)
    }

    /// The process environment alone (when there is no readable store).
    pub fn capture_env_only() -> DeployEnv {
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        DeployEnv::new(env, std::iter::empty())
    }

    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.vars.get(name).map(|(value, _)| value)
    }

    pub fn source(&self, name: &str) -> Option<Source> {
        self.vars.get(name).map(|(_, source)| *source)
    }

    pub fn has(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }
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
        out.push_str(&serde_json::Value::String(value.0.clone()).to_string());
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
        map.insert(name.to_string(), Secret(value));
    }
    Ok(map)
}

/// Whether a name is a legal secret name (`^[A-Z][A-Z0-9_]*$`).
pub fn is_secret_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Names whose values are credentials wherever they appear (SPEC §5).
pub const CREDENTIAL_NAMES: &[&str] = &[
    "WB_S3_KEY",
    "WB_S3_SECRET",
    "WB_DATABASE_URL",
    "WB_PUBLIC_BEARER",
    "WB_SIGNING_KEY",
];

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

    #[test]
    fn secret_never_formats_its_value() {
        let s = Secret::new("canary-value");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
    }
}
