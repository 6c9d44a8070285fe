//! The sealed environment of a recipe run (SPEC §7.4): a pure function of the
//! deployment, its engine env and the caller's captured environment. The values stay in
//! a [`SealedEnv`], whose `Debug` shows names only; they leave it only where the child
//! is spawned.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::core::deployment::Deployment;
use crate::core::engine_env::EngineEnv;
use crate::core::render::Artifact;
use crate::edge::Vars;

/// The complete environment of one recipe run, in order.
pub struct SealedEnv(Vec<(String, OsString)>);

impl std::fmt::Debug for SealedEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl SealedEnv {
    /// The names, in order (values never leave except into a child).
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Replaces (or adds) one variable: `recipe check` points PATH at its recording
    /// wrappers and sends an action the kit's closed enum cannot.
    pub fn set(&mut self, name: &str, value: OsString) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value,
            None => self.0.push((name.to_string(), value)),
        }
    }

    /// A duct expression for `program args…` with exactly this environment.
    pub fn into_expression(self, program: &str, args: &[&OsStr]) -> duct::Expression {
        duct::cmd(program, args).full_env(self.0)
    }

    /// A std command for `program` with exactly this environment (tests run the spine
    /// with it).
    pub fn into_command(self, program: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(program);
        cmd.env_clear().envs(self.0);
        cmd
    }
}

/// The actions the spine's `wb_recipe_run` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Up,
    Secrets,
    Down,
    Status,
    Logs,
    Url,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Up => "up",
            Action::Secrets => "secrets",
            Action::Down => "down",
            Action::Status => "status",
            Action::Logs => "logs",
            Action::Url => "url",
        }
    }
}

/// The names the kit itself sets for a recipe run.
pub const KIT_INPUTS: &[&str] = &[
    "PATH",
    "HOME",
    "WB_RECIPE_ACTION",
    "WB_PROVIDERS_DIR",
    "WB_IMAGE",
    "WB_APP_NAME",
    "WB_PORT",
    "WB_REGION",
    "WB_SECRET_KEYS",
    "WB_DEPLOYMENT_ID",
    "WB_ENV_DIGEST",
    "WB_SCALE",
    "WB_REGIONS",
    "WB_SIZE",
    "WB_MEMORY_MB",
    "WB_CPUS",
    "WB_AUTO_STOP",
    "WB_STRATEGY",
    "WB_HEALTH_PATH",
    "WB_ENGINE_KEYS",
    "WB_PURGE",
    "UPDATE",
];

/// The path the platform probes for liveness (the engine's unauthenticated `/livez`).
pub const HEALTH_PATH: &str = crate::core::render::fly_toml::HEALTH_PATH;

/// The shape inputs of SPEC §13.1, always set (empty when the file leaves the key
/// unset): `WB_SCALE`, `WB_REGIONS` (space-separated), `WB_SIZE` with `WB_MEMORY_MB` and
/// `WB_CPUS` (empty for the provider's default), `WB_AUTO_STOP`, `WB_STRATEGY`,
/// `WB_HEALTH_PATH`.
pub fn shape_inputs(d: &Deployment) -> [(&'static str, String); 8] {
    use crate::core::deployment::Axis;
    let size = d.size;
    [
        ("WB_SCALE", d.scale.to_string()),
        ("WB_REGIONS", d.regions.join(" ")),
        (
            "WB_SIZE",
            size.map(|s| s.as_str().to_string()).unwrap_or_default(),
        ),
        (
            "WB_MEMORY_MB",
            size.map(|s| s.memory_mb().to_string()).unwrap_or_default(),
        ),
        (
            "WB_CPUS",
            size.map(|s| s.cpus().to_string()).unwrap_or_default(),
        ),
        ("WB_AUTO_STOP", d.auto_stop.as_str().to_string()),
        ("WB_STRATEGY", d.strategy.as_str().to_string()),
        ("WB_HEALTH_PATH", HEALTH_PATH.to_string()),
    ]
}

/// Generic passthroughs every recipe gets when the caller sets them: `UPDATE`
/// (re-apply, never create).
pub const GENERIC_PASSTHROUGH: &[&str] = &["UPDATE"];

/// The PATH a recipe gets when the caller has none.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Names that change how bash or the dynamic loader behaves: never set from a secret or
/// a passthrough, whatever the deployment declares.
pub(super) fn is_shell_sensitive(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "BASH_ENV",
        "ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "IFS",
        "CDPATH",
        "GLOBIGNORE",
        "POSIXLY_CORRECT",
        "PS4",
        "TMOUT",
        "SHELL",
        "PWD",
        "OLDPWD",
        "SHLVL",
    ];
    NAMES.contains(&name)
        || name.starts_with("BASH_")
        || name.starts_with("LD_")
        || name.starts_with("DYLD_")
}

/// What one recipe run is asked to do, beyond the deployment and its engine env.
#[derive(Debug, Clone)]
pub struct RecipeRun<'a> {
    pub action: Action,
    /// The recipes root (`WB_PROVIDERS_DIR` for the recipe; where `_recipe.sh` is).
    pub providers_dir: &'a Path,
    /// The artifacts the recipe asked for, rendered into the run's private temp dir.
    pub artifacts: &'a [(Artifact, PathBuf)],
    /// `down --purge --yes`: `WB_PURGE=1` tells the recipe to destroy the data too.
    pub purge: bool,
    /// Names from the recipe's `# wb-passthrough:` header.
    pub passthrough: &'a [String],
    /// `WB_ENV_DIGEST`: the engine env's salted digest ([`crate::core::plan::env_digest`]).
    pub env_digest: &'a str,
}

/// The complete environment of a recipe run, in order — nothing else reaches the
/// recipe. `caller` reads the kit's own environment (PATH, HOME, the passthroughs);
/// everything else comes from the deployment and its engine env.
///
/// Order: PATH, HOME, WB_RECIPE_ACTION, WB_PROVIDERS_DIR, WB_IMAGE, WB_APP_NAME, WB_PORT,
/// WB_REGION, WB_SECRET_KEYS, WB_DEPLOYMENT_ID, WB_ENV_DIGEST, the shape inputs
/// ([`shape_inputs`]), one `WB_PROP_<KEY>` per
/// provider property the recipe declares (empty when the drawer leaves it unset), the
/// engine env (each by name, in its order), WB_ENGINE_KEYS,
/// one variable per artifact the recipe asked for (`WB_FLY_TOML`), `UPDATE`, then the
/// recipe's own passthroughs.
/// Unset or empty caller values are left out, as are the deployment's absent optionals.
///
/// Refuses an engine variable whose name would replace a kit input with another value
/// (a secret named `PATH`), or that changes how bash runs (`BASH_ENV`, `IFS`, `LD_*`…).
pub fn sealed_env(
    d: &Deployment,
    engine: &EngineEnv,
    run: &RecipeRun,
    caller: &Vars,
) -> Result<SealedEnv, String> {
    let set = |name: &str| caller.os(name).map(OsStr::to_owned);
    let mut env: Vec<(String, OsString)> = Vec::new();
    let put = |env: &mut Vec<(String, OsString)>, name: &str, value: OsString| {
        env.push((name.to_string(), value));
    };
    put(
        &mut env,
        "PATH",
        set("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
    );
    if let Some(home) = set("HOME") {
        put(&mut env, "HOME", home);
    }
    put(&mut env, "WB_RECIPE_ACTION", run.action.as_str().into());
    put(
        &mut env,
        "WB_PROVIDERS_DIR",
        run.providers_dir.as_os_str().to_owned(),
    );
    put(&mut env, "WB_IMAGE", d.image.clone().into());
    if let Some(app) = &d.app {
        put(&mut env, "WB_APP_NAME", app.into());
    }
    put(&mut env, "WB_PORT", d.port.to_string().into());
    if let Some(region) = &d.region {
        put(&mut env, "WB_REGION", region.into());
    }
    put(&mut env, "WB_SECRET_KEYS", d.secrets.join(" ").into());
    put(&mut env, "WB_DEPLOYMENT_ID", d.id.clone().into());
    put(&mut env, "WB_ENV_DIGEST", run.env_digest.into());
    for (name, value) in shape_inputs(d) {
        put(&mut env, name, value.into());
    }
    for (key, value) in &d.properties {
        put(&mut env, &format!("WB_PROP_{key}"), value.into());
    }

    let reserved = |name: &str| {
        KIT_INPUTS.contains(&name)
            || name.starts_with("WB_PROP_")
            || GENERIC_PASSTHROUGH.contains(&name)
            || run.passthrough.iter().any(|p| p == name)
    };
    for (name, value) in &engine.0 {
        if is_shell_sensitive(name) {
            return Err(format!(
                "the engine env holds `{name}`, a name that changes how bash or the loader behaves — rename that secret"
            ));
        }
        if let Some((_, existing)) = env.iter().find(|(n, _)| n == name) {
            if existing.to_str() == Some(value.expose()) {
                continue;
            }
            return Err(format!(
                "the engine env's `{name}` would replace the kit's own `{name}` for the recipe — rename that secret"
            ));
        }
        if reserved(name) {
            return Err(format!(
                "the engine env holds `{name}`, which the kit passes to the recipe from your environment — rename that secret"
            ));
        }
        put(&mut env, name, value.expose().into());
    }
    put(&mut env, "WB_ENGINE_KEYS", engine.names().join(" ").into());
    if run.purge {
        put(&mut env, "WB_PURGE", "1".into());
    }
    for (artifact, path) in run.artifacts {
        put(&mut env, artifact.env_var(), path.as_os_str().to_owned());
    }
    for name in GENERIC_PASSTHROUGH.iter().copied() {
        if let Some(value) = set(name) {
            put(&mut env, name, value);
        }
    }
    for name in run.passthrough {
        if env.iter().any(|(n, _)| n == name) {
            continue;
        }
        if let Some(value) = set(name) {
            put(&mut env, name, value);
        }
    }
    Ok(SealedEnv(env))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::deployment::{AutoStop, Place, Size, Strategy};

    #[test]
    fn shape_inputs_carry_the_scaled_shape() {
        let mut d = Deployment::new("s", Place::Cloud);
        d.scale = 3;
        d.regions = vec!["ams".into(), "sin".into()];
        d.size = Some(Size::T3);
        d.auto_stop = AutoStop::Off;
        d.strategy = Strategy::Canary;
        let got: Vec<(&str, String)> = shape_inputs(&d).into_iter().collect();
        let want: Vec<(&str, String)> = [
            ("WB_SCALE", "3"),
            ("WB_REGIONS", "ams sin"),
            ("WB_SIZE", "t3"),
            ("WB_MEMORY_MB", "2048"),
            ("WB_CPUS", "2"),
            ("WB_AUTO_STOP", "off"),
            ("WB_STRATEGY", "canary"),
            ("WB_HEALTH_PATH", "/livez"),
        ]
        .into_iter()
        .map(|(n, v)| (n, v.to_string()))
        .collect();
        assert_eq!(got, want);
        for (name, _) in &got {
            assert!(KIT_INPUTS.contains(name), "{name} is a kit input");
        }
    }
}
