//! One file per verb, each a short story over the modules of the core and the shell.
//! This file holds what every verb shares: the output context, the outcome, and
//! loading a deployment file into a checked deployment.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::deployment::Deployment;
use crate::diagnostic::{self, Diagnostic};
use crate::drawer::{self, Drawer};
use crate::recipes::{self, Recipes};
use crate::secrets::{DeployEnv, Store};
use crate::state;
use crate::validate::{self, Checked};

pub mod ci;
pub mod doctor;
pub mod fmt;
pub mod init;
pub mod lifecycle;
pub mod plan;
pub mod secrets;
pub mod validate_verb;

/// How to talk to the user: human text on stderr (colored only on a terminal without
/// `NO_COLOR`), one JSON object on stdout with `--json`.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    pub json: bool,
    pub color: bool,
}

impl Ctx {
    pub fn from_env(json: bool) -> Ctx {
        use std::io::IsTerminal;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Ctx {
            json,
            color: !no_color && std::io::stderr().is_terminal(),
        }
    }

    /// A line of human text, on stderr.
    pub fn say(&self, text: impl AsRef<str>) {
        eprintln!("{}", text.as_ref());
    }

    /// Bold green (or plain) for a success line.
    pub fn good(&self, text: &str) -> String {
        if self.color {
            format!("\x1b[1;32m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// What a verb ends with: its exit code and the fields of its JSON object.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub code: i32,
    pub fields: Map<String, Value>,
}

impl Outcome {
    pub fn ok(fields: Value) -> Outcome {
        Outcome {
            code: 0,
            fields: into_map(fields),
        }
    }

    pub fn with_code(code: i32, fields: Value) -> Outcome {
        Outcome {
            code,
            fields: into_map(fields),
        }
    }

    /// A failure with one message: printed as `error: …` and carried as `"error"`.
    pub fn error(message: impl Into<String>) -> Outcome {
        Outcome::with_code(1, json!({ "error": message.into() }))
    }
}

fn into_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        other => {
            let mut map = Map::new();
            map.insert("value".into(), other);
            map
        }
    }
}

/// FILE → a path: default `./deployment.org`; a bare name also finds
/// `deployments/<name>` and `deployments/<name>.org`.
pub fn resolve_file(file: Option<&str>) -> PathBuf {
    let Some(file) = file else {
        return PathBuf::from("deployment.org");
    };
    let given = PathBuf::from(file);
    if given.exists() || file.contains('/') {
        return given;
    }
    for candidate in [
        format!("deployments/{file}"),
        format!("deployments/{file}.org"),
    ] {
        let candidate = PathBuf::from(candidate);
        if candidate.is_file() {
            return candidate;
        }
    }
    given
}

/// A deployment file, read and checked, with everything captured at the edge.
pub struct Loaded {
    pub path: PathBuf,
    /// The path as shown in messages.
    pub shown: String,
    pub text: Option<String>,
    pub drawer: Drawer,
    pub checked: Checked,
    pub deploy_env: DeployEnv,
    pub recipes: Result<Recipes, String>,
    pub app_dir: PathBuf,
}

impl Loaded {
    pub fn deployment(&self) -> Option<&Deployment> {
        self.checked.deployment.as_ref()
    }

    /// The human report: every problem with its source line, then the summary if valid.
    pub fn report(&self, ctx: &Ctx) {
        let text = diagnostic::render_report(
            &self.shown,
            self.text.as_deref(),
            &self.checked.diagnostics,
            ctx.color,
        );
        if !text.is_empty() {
            eprint!("{text}");
        }
        if let Some(d) = self.deployment() {
            ctx.say(ctx.good(&format!("valid — {}", d.summary())));
        }
    }

    /// `valid`, `summary`, `errors`, `warnings` for `--json`.
    pub fn json_fields(&self) -> Map<String, Value> {
        let list = |it: &mut dyn Iterator<Item = &Diagnostic>| {
            Value::Array(it.map(Diagnostic::to_json).collect())
        };
        let mut map = Map::new();
        map.insert("file".into(), Value::String(self.shown.clone()));
        map.insert("valid".into(), Value::Bool(self.checked.valid()));
        map.insert(
            "summary".into(),
            self.deployment()
                .map(|d| Value::String(format!("valid — {}", d.summary())))
                .unwrap_or(Value::Null),
        );
        map.insert("errors".into(), list(&mut self.checked.errors()));
        map.insert("warnings".into(), list(&mut self.checked.warnings()));
        map
    }

    /// The state directory of this deployment (not created).
    pub fn state_dir(&self) -> Option<PathBuf> {
        self.deployment().map(|d| self.app_dir.join(&d.id))
    }
}

/// Reads, checks and captures: the one way every verb gets a deployment.
/// `require_secrets`: see [`validate::Context::require_secrets`].
pub fn load(file: Option<&str>, id: Option<&str>, require_secrets: bool) -> Result<Loaded, String> {
    let path = resolve_file(file);
    let shown = path.display().to_string();
    let app_dir = state::app_dir()?;
    let loaded = drawer::load(&path);
    let mut drawer = match &loaded.text {
        Some(text) => drawer::read(text, id),
        None => Drawer::default(),
    };
    let mut diagnostics = loaded.diagnostics;
    diagnostics.append(&mut drawer.diagnostics);
    drawer.diagnostics = diagnostics;

    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("deployment")
        .to_string();
    let deploy_id = drawer.value("ID").unwrap_or(&stem).to_string();
    let store = recipes::is_plain_name(&deploy_id).then(|| Store::at(&app_dir.join(&deploy_id)));
    let deploy_env = match store.as_ref().map(DeployEnv::capture) {
        Some(Ok(env)) => env,
        Some(Err(problem)) => {
            drawer.diagnostics.push(Diagnostic::error(None, problem));
            DeployEnv::capture_env_only()
        }
        None => DeployEnv::capture_env_only(),
    };
    let recipes = Recipes::from_env(&app_dir);
    let has_recipe = |p: &str| recipes.as_ref().is_ok_and(|r| r.has(p));
    let cx = validate::Context {
        file: &shown,
        file_stem: &stem,
        deploy_env: &deploy_env,
        has_recipe: &has_recipe,
        require_secrets,
    };
    let checked = if loaded.text.is_some() {
        validate::check(&drawer, &cx)
    } else {
        Checked {
            deployment: None,
            diagnostics: drawer.diagnostics.clone(),
        }
    };
    Ok(Loaded {
        path,
        shown,
        text: loaded.text,
        drawer,
        checked,
        deploy_env,
        recipes,
        app_dir,
    })
}

/// The `properties` of `plan --json`: the drawer as read, with any value that could be a
/// credential shown as `<redacted>`.
pub fn properties_json(drawer: &Drawer) -> Value {
    let mut map = Map::new();
    for p in &drawer.properties {
        let value = if validate::looks_secret(&p.key, &p.value) {
            "<redacted>".to_string()
        } else {
            p.value.clone()
        };
        map.insert(p.key.clone(), Value::String(value));
    }
    Value::Object(map)
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
