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
    /// Names exported in the process env with a value that is not UTF-8 (so absent
    /// from `vars`): the validator says so instead of "has no value".
    not_utf8: std::collections::BTreeSet<String>,
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
        DeployEnv {
            vars,
            not_utf8: Default::default(),
        }
    }

    /// Records the names exported with a value that is not UTF-8.
    pub fn with_not_utf8(mut self, names: impl IntoIterator<Item = String>) -> DeployEnv {
        self.not_utf8.extend(names);
        self
    }

    /// Whether `name` is exported, but not as UTF-8 (and not in the store).
    pub fn is_not_utf8(&self, name: &str) -> bool {
        !self.has(name) && self.not_utf8.contains(name)
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

    /// Where a name's value came from (the foreign-credential warning asks).
    pub fn source(&self, name: &str) -> Option<Source> {
        self.vars.get(name).map(|(_, source)| *source)
    }

    pub fn has(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }
}

/// Well-known credentials of other tools: a deployment file declaring one as a secret
/// would carry it from the caller's shell into the provider (issue #14 item 13).
pub const FOREIGN_CREDENTIALS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "GITLAB_TOKEN",
    "NPM_TOKEN",
    "CARGO_REGISTRY_TOKEN",
    "PYPI_TOKEN",
    "DOCKER_PASSWORD",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "AZURE_CLIENT_SECRET",
    "DIGITALOCEAN_ACCESS_TOKEN",
    "CLOUDFLARE_API_TOKEN",
    "HEROKU_API_KEY",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "VAULT_TOKEN",
    "FLY_API_TOKEN",
    "FLY_ACCESS_TOKEN",
];

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
