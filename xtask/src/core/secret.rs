//! Secrets as values: a type that cannot be printed by accident, and the deploy env
//! (process env + the deployment's store, the store wins), captured at the edge and
//! handed to the core as a value. See SPEC §8.

use std::collections::BTreeMap;
use std::fmt;

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

    /// This deploy env with `store`'s values laid over it (the store wins).
    pub fn with_store(mut self, store: impl IntoIterator<Item = (String, Secret)>) -> DeployEnv {
        for (name, value) in store {
            if !value.0.is_empty() {
                self.vars.insert(name, (value, Source::Store));
            }
        }
        self
    }

    /// Every name with its source, sorted.
    pub fn names(&self) -> impl Iterator<Item = (&str, Source)> {
        self.vars.iter().map(|(n, (_, s))| (n.as_str(), *s))
    }

    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.vars.get(name).map(|(value, _)| value)
    }

    pub fn has(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }
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
    fn secret_never_formats_its_value() {
        let s = Secret::new("canary-value");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
    }

    #[test]
    fn the_store_wins_and_empty_values_count_as_unset() {
        let env = DeployEnv::new(
            [
                ("A".to_string(), "env".to_string()),
                ("B".to_string(), String::new()),
            ],
            [("A".to_string(), Secret::new("store"))],
        );
        assert_eq!(env.get("A").map(Secret::expose), Some("store"));
        assert_eq!(env.names().collect::<Vec<_>>(), [("A", Source::Store)]);
        assert!(!env.has("B"));
    }
}
