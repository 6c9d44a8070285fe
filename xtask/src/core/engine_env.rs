//! The engine environment: the exact set of variables the engine boots with (SPEC §5).
//!
//! One function decides it; the spine's `wb_base_env` (recipes/_recipe.sh) computes the
//! same list in bash, and a test proves the two agree.

use std::fmt;

use crate::core::credentials::Needs;
use crate::core::deployment::{Axis, Deployment, Storage};
use crate::core::secret::{DeployEnv, Secret};

/// Where the engine's durable data is mounted.
pub const DATA_DIR: &str = "/data";

/// The names the kit itself sets from the file: a declared secret may not take one.
pub const KIT_NAMES: &[&str] = &[
    "WB_WEB",
    "PORT",
    "WB_DATA",
    "WB_EMBED",
    "WB_REGISTRY",
    "WB_APP_NAME",
    "WB_REGION",
    "WB_PROFILE_DIR",
    "WB_TENANCY_MODE",
    "WB_STORAGE",
    "WB_S3_ENDPOINT",
    "WB_S3_BUCKET",
    "WB_S3_REGION",
    "WB_AUTH",
    "WB_AUTH_ISSUER",
    "WB_JWKS_URL",
];

/// One variable's value: plain text, or a secret that renders as `<redacted>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Plain(String),
    Secret(Secret),
}

impl EnvValue {
    /// The value for a child process's environment — the one place a secret is exposed.
    pub fn expose(&self) -> &str {
        match self {
            EnvValue::Plain(v) => v,
            EnvValue::Secret(s) => s.expose(),
        }
    }

    pub fn is_secret(&self) -> bool {
        matches!(self, EnvValue::Secret(_))
    }
}

impl fmt::Display for EnvValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvValue::Plain(v) => f.write_str(v),
            EnvValue::Secret(s) => write!(f, "{s}"),
        }
    }
}

/// The engine env as an ordered list of `(NAME, value)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EngineEnv(pub Vec<(String, EnvValue)>);

impl EngineEnv {
    pub fn get(&self, name: &str) -> Option<&EnvValue> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// `NAME=value` lines, secrets as `NAME=<redacted>`.
    pub fn render(&self) -> String {
        self.0.iter().map(|(n, v)| format!("{n}={v}\n")).collect()
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.0
                .iter()
                .map(|(n, v)| serde_json::json!({ "name": n, "value": v.to_string() }))
                .collect(),
        )
    }
}

/// The variables the engine boots with, in a fixed order: the five always-present,
/// then what the file set, then credentials from the deploy env, then declared secrets.
///
/// Storage credentials ride along only with `STORAGE: s3`, the DSN only with
/// `DATABASE: postgres`: a minimal deployment ships a minimal environment.
pub fn engine_env(d: &Deployment, deploy_env: &DeployEnv) -> EngineEnv {
    let mut env = Vec::new();
    let mut plain =
        |name: &str, value: &str| env.push((name.to_string(), EnvValue::Plain(value.to_string())));
    plain("WB_WEB", "1");
    plain("PORT", &d.port.to_string());
    plain("WB_DATA", DATA_DIR);
    plain("WB_EMBED", "local");
    plain("WB_REGISTRY", &format!("{DATA_DIR}/registry.db"));
    let optional = |name: &str, value: Option<&str>, env: &mut Vec<(String, EnvValue)>| {
        if let Some(value) = value {
            env.push((name.to_string(), EnvValue::Plain(value.to_string())));
        }
    };
    optional("WB_APP_NAME", d.app.as_deref(), &mut env);
    optional("WB_REGION", d.region.as_deref(), &mut env);
    optional("WB_PROFILE_DIR", d.profile.as_deref(), &mut env);
    optional("WB_TENANCY_MODE", Some(d.tenancy.as_str()), &mut env);
    let storage = match d.storage {
        Storage::LocalFs => "local",
        Storage::S3 => "s3",
    };
    optional("WB_STORAGE", Some(storage), &mut env);
    let s3 = d.storage == Storage::S3;
    optional(
        "WB_S3_ENDPOINT",
        d.storage_endpoint.as_deref().filter(|_| s3),
        &mut env,
    );
    optional(
        "WB_S3_BUCKET",
        d.storage_bucket.as_deref().filter(|_| s3),
        &mut env,
    );
    optional(
        "WB_S3_REGION",
        d.storage_region.as_deref().filter(|_| s3),
        &mut env,
    );
    optional("WB_AUTH", Some(d.auth.as_str()), &mut env);
    optional("WB_AUTH_ISSUER", d.issuer.as_deref(), &mut env);
    optional("WB_JWKS_URL", d.jwks().as_deref(), &mut env);

    let secret = |name: &str, env: &mut Vec<(String, EnvValue)>| {
        if env.iter().any(|(n, _)| n == name) {
            return;
        }
        if let Some(value) = deploy_env.get(name) {
            env.push((name.to_string(), EnvValue::Secret(value.clone())));
        }
    };
    let needs = Needs {
        place: Some(d.place),
        storage: Some(d.storage),
        database: Some(d.database),
    };
    for name in needs.shipped() {
        secret(name, &mut env);
    }
    for name in &d.secrets {
        secret(name, &mut env);
    }
    EngineEnv(env)
}
