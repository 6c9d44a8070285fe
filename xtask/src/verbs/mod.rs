//! One file per verb, each a short story over the core and the places: args → core +
//! place → [`Outcome`]. Verbs are the only printers; `main` turns an outcome into the
//! JSON object and the exit code, once.

use std::path::Path;

use serde_json::{Map, Value, json};

use crate::cli::Verb;
use crate::core::deployment::Deployment;
use crate::core::drawer::Drawer;
use crate::core::validate;
use crate::edge::Edge;
use crate::error::Error;
use crate::load::{self, Loaded};
use crate::local::{Local, Where};
use crate::providers::cloud::Cloud;
use crate::providers::resolve::Recipes;
use crate::state;
use crate::state::Paths;
use crate::ui::Ui;

pub mod apply;
pub mod ci;
pub mod completions;
pub mod connect;
pub mod doctor;
pub mod down;
pub mod fmt;
pub mod init;
pub mod plan;
pub mod previews;
pub mod recipe;
pub mod releases;
pub mod rollback;
pub mod secrets;
pub mod show;
pub mod validate_file;
pub mod verify;

/// What a verb ends with: its exit code and the fields of its JSON object.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub code: i32,
    pub fields: Map<String, Value>,
}

/// A verb that failed: the error, and any fields that say where.
#[derive(Debug, Clone)]
pub struct Failure {
    pub error: Error,
    pub fields: Map<String, Value>,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure {
            error,
            fields: Map::new(),
        }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Error::Failed(message).into()
    }
}

pub type Verdict = Result<Outcome, Failure>;

impl Outcome {
    pub fn ok(fields: Value) -> Outcome {
        Outcome::with_code(0, fields)
    }

    pub fn with_code(code: i32, fields: Value) -> Outcome {
        Outcome {
            code,
            fields: into_map(fields),
        }
    }
}

pub fn into_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Everything a verb gets.
pub struct Ctx<'a> {
    pub edge: &'a Edge,
    pub ui: Ui,
    /// `--lock-wait SECONDS` (0: a mutating verb refuses at once when locked).
    pub lock_wait: std::time::Duration,
    /// `--preview NAME`: the verb works on that preview of the file's deployment.
    pub preview: Option<String>,
}

impl Ctx<'_> {
    /// How messages name the kit (`cargo xtask deploy`, `wb-deploy`).
    pub fn program(&self) -> &str {
        &self.edge.program
    }
}

/// Runs one deploy verb.
pub fn run(cx: &Ctx, verb: &Verb, file: Option<&std::path::Path>, id: Option<&str>) -> Verdict {
    match verb {
        Verb::Init(args) => return init::run(cx, args, file),
        Verb::Doctor => return doctor::run(cx, file),
        Verb::Local => return apply::zero_config(cx),
        Verb::Recipe(action) => return recipe::run(cx, action),
        _ => {}
    }
    let mut loaded = match zero_config_fallback(cx, verb, file, id)? {
        Some(loaded) => loaded,
        None => load::load(cx.edge, file, id, verb.requires_secrets())?,
    };
    if let Some(name) = &cx.preview {
        loaded = previews::derive(cx, loaded, name, matches!(verb, Verb::Apply { .. }))?;
    }
    match verb {
        Verb::Validate => Ok(validate_file::run(cx, &loaded)),
        Verb::Plan { live } => plan::run(cx, &loaded, *live),
        Verb::Fmt => fmt::run(cx, &loaded),
        Verb::Secrets(action) => secrets::run(cx, &loaded, action),
        _ => lifecycle(cx, verb, &loaded),
    }
}

/// With no FILE and no `./deployment.org`, the verbs that look at or stop a running
/// deployment find the zero-config one (`up-local`, id `local`) when its state exists.
fn zero_config_fallback(
    cx: &Ctx,
    verb: &Verb,
    file: Option<&std::path::Path>,
    id: Option<&str>,
) -> Result<Option<Loaded>, String> {
    let looks = matches!(
        verb,
        Verb::Status | Verb::Down { .. } | Verb::Logs | Verb::Url | Verb::Verify | Verb::Connect
    );
    if !looks || file.is_some() || id.is_some() || cx.edge.cwd.join("deployment.org").exists() {
        return Ok(None);
    }
    let app_dir = state::app_dir(&cx.edge.vars)?;
    if !Paths::for_id(&app_dir, load::ZERO_CONFIG_ID).dir.is_dir() {
        return Ok(None);
    }
    load::zero_config(cx.edge).map(Some)
}

/// The converging verbs need a valid deployment; warnings are shown first.
fn lifecycle(cx: &Ctx, verb: &Verb, loaded: &Loaded) -> Verdict {
    let Some(d) = loaded.deployment() else {
        loaded.report(&cx.ui);
        return Ok(Outcome {
            code: 1,
            fields: validation_fields(loaded),
        });
    };
    for w in loaded.checked.warnings() {
        cx.ui.say(&format!("warning: {}", w.located(&loaded.shown)));
    }
    match verb {
        Verb::Apply { force } => apply::run(cx, loaded, d, *force),
        Verb::Down { purge } => down::run(cx, loaded, d, *purge),
        Verb::Status => show::status(cx, loaded, d),
        Verb::Logs => show::logs(cx, loaded, d),
        Verb::Url => show::url(cx, loaded, d),
        Verb::Verify => verify::run(cx, loaded, d),
        Verb::Releases => releases::run(cx, loaded, d),
        Verb::Previews => previews::run(cx, loaded, d),
        Verb::Rollback { to } => rollback::run(cx, loaded, d, *to),
        Verb::Connect => connect::run(cx, loaded, d),
        other => unreachable!("`{}` is routed in `run`", other.name()),
    }
}

/// `file`, `valid`, `summary`, `errors`, `warnings` for `--json`.
pub fn validation_fields(loaded: &Loaded) -> Map<String, Value> {
    let list = |it: &mut dyn Iterator<Item = &crate::core::diagnostic::Diagnostic>| {
        Value::Array(it.map(|d| d.to_json()).collect())
    };
    let mut map = Map::new();
    map.insert("file".into(), Value::String(loaded.shown.clone()));
    map.insert("valid".into(), Value::Bool(loaded.checked.valid()));
    map.insert(
        "summary".into(),
        loaded
            .deployment()
            .map(|d| Value::String(format!("valid — {}", d.summary())))
            .unwrap_or(Value::Null),
    );
    map.insert("errors".into(), list(&mut loaded.checked.errors()));
    map.insert("warnings".into(), list(&mut loaded.checked.warnings()));
    map
}

/// The `properties` of `plan --json`: the drawer as read, with every key the kit does
/// not know, and any value that could be a credential, shown as `<redacted>`.
pub fn properties_json(drawer: &Drawer) -> Value {
    let known = crate::core::deployment::KNOWN_KEYS;
    let mut map = Map::new();
    for p in &drawer.properties {
        let value = if !known.contains(&p.key.as_str()) || validate::looks_secret(&p.key, &p.value)
        {
            "<redacted>".to_string()
        } else {
            p.value.clone()
        };
        map.insert(p.key.clone(), Value::String(value));
    }
    Value::Object(map)
}

/// The fields every local verb reports.
pub fn local_fields(at: &Where) -> Map<String, Value> {
    into_map(json!({
        "place": "local",
        "id": at.id,
        "backend": at.backend.map(|b| b.name()),
        "discovery": at.discovery.display().to_string(),
        "data": at.data.display().to_string(),
    }))
}

/// A local failure as a verb failure: the error, with where it happened.
pub fn local_failure(failed: crate::local::Failed) -> Failure {
    let mut fields = local_fields(&failed.at);
    if let Some(unhealthy) = failed.unhealthy {
        let (reason, tail) = *unhealthy;
        fields.insert("healthy".into(), json!(false));
        fields.insert("reason".into(), json!(reason));
        fields.insert("log_tail".into(), json!(tail));
    }
    Failure {
        error: failed.error,
        fields,
    }
}

/// [`local_failure`] for a verb that knows the FILE: the place's "`… apply` starts it"
/// names the file as given (or `up-local` for the zero-config deployment), so the hint
/// works as written.
pub fn local_failure_in(cx: &Ctx, loaded: &Loaded) -> impl Fn(crate::local::Failed) -> Failure {
    let bare = format!("`{} apply` starts it", cx.program());
    let named = if loaded.shown == crate::load::ZERO_CONFIG_SHOWN {
        format!("`{} up-local` starts it", cx.program())
    } else {
        format!("`{} apply {}` starts it", cx.program(), loaded.shown)
    };
    move |failed| {
        let mut failure = local_failure(failed);
        if let Error::Failed(message) = &mut failure.error {
            *message = message.replace(&bare, &named);
        }
        failure
    }
}

/// The local place, for a verb.
pub fn local<'a>(
    cx: &'a Ctx,
    loaded: &'a Loaded,
    d: &'a Deployment,
    paths: &'a Paths,
) -> Local<'a> {
    Local {
        d,
        deploy_env: &loaded.deploy_env,
        paths,
        edge: cx.edge,
        report: &cx.ui,
        lock_wait: cx.lock_wait,
    }
}

/// The cloud place (the provider's recipe), for a verb.
pub fn cloud<'a>(
    cx: &'a Ctx,
    loaded: &'a Loaded,
    d: &'a Deployment,
    paths: &'a Paths,
    recipes: &'a Recipes,
) -> Cloud<'a> {
    Cloud {
        d,
        deploy_env: &loaded.deploy_env,
        paths,
        recipes,
        edge: cx.edge,
        report: &cx.ui,
        json: cx.ui.json,
        shown: &loaded.shown,
        lock_wait: cx.lock_wait,
    }
}

/// The deployment's state paths.
pub fn paths(loaded: &Loaded, d: &Deployment) -> state::Paths {
    state::Paths::for_id(&loaded.app_dir, &d.id)
}

/// Writes `text` to `path` unless it exists and `force` is not given.
pub fn write_new_file(path: &Path, text: &str, force: bool) -> Result<(), String> {
    if path.exists() && !force {
        return Err(format!(
            "{} already exists — pass --force to overwrite it",
            path.display()
        ));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    state::atomic_write(path, text.as_bytes(), 0o644)
}
