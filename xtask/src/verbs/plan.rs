//! `plan`: validate, then show the engine env (secrets redacted), the artifacts the
//! provider's recipe asks for (fly.toml), and what `apply` would change — the same
//! [`plan::plan`] that `apply` executes. Read-only.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Ctx, Outcome, Verdict, properties_json, validation_fields};
use crate::core::deployment::{Deployment, Place};
use crate::core::plan::{self, Intended, Plan};
use crate::core::render::Artifact;
use crate::edge::Vars;
use crate::load::Loaded;
use crate::state;

/// The intent and plan of a loaded, valid deployment, read-only (no salt is made).
pub fn intended_and_plan(loaded: &Loaded, d: &Deployment, vars: &Vars) -> (Intended, Plan) {
    let (recipe, header) = match (&loaded.recipes, d.place) {
        (Ok(recipes), Place::Cloud) => (
            recipes.text(&d.provider),
            recipes.header(&d.provider).unwrap_or_default(),
        ),
        _ => (None, Default::default()),
    };
    let from_source = header.builds_from_source(vars).is_some();
    let intended = Intended::new(
        d,
        &loaded.deploy_env,
        recipe,
        &header.artifacts,
        from_source,
    );
    let dir = loaded.app_dir.join(&d.id);
    let before = state::last_applied(&dir);
    let salt = state::existing_salt(&dir);
    let last = before.as_ref().zip(salt.as_deref());
    let plan = plan::plan(d, &intended, last).after_down(state::releases::is_stopped(&dir));
    (intended, plan)
}

/// `plan --live`: how what runs differs from the newest release — the recipe's
/// `status` and its `state:` line in the cloud, the backend's probe locally.
fn drift(cx: &Ctx, loaded: &Loaded, d: &Deployment) -> Result<Vec<String>, super::Failure> {
    let paths = super::paths(loaded, d);
    let Some(release) = state::releases::current(&paths.dir) else {
        return Ok(Vec::new());
    };
    if d.place == Place::Cloud {
        let recipes = loaded.recipes.clone()?;
        return Ok(super::cloud(cx, loaded, d, &paths, &recipes).drift()?);
    }
    let status = super::local(cx, loaded, d, &paths).status();
    Ok(match status.state {
        crate::local::State::Running { .. } => Vec::new(),
        other => vec![format!(
            "re-create: the engine of release {} is {} (the backend's probe)",
            release.number,
            other.name()
        )],
    })
}

pub fn run(cx: &Ctx, loaded: &Loaded, live: bool) -> Verdict {
    loaded.report(&cx.ui);
    let mut fields = validation_fields(loaded);
    fields.insert("properties".into(), properties_json(&loaded.drawer));
    let Some(d) = loaded.deployment() else {
        fields.insert("engine_env".into(), Value::Null);
        fields.insert("fly_toml".into(), Value::Null);
        fields.insert("artifacts".into(), json!({}));
        return Ok(Outcome { code: 1, fields });
    };
    let (intended, plan) = intended_and_plan(loaded, d, &cx.edge.vars);
    let ui = &cx.ui;
    ui.say(&format!(
        "\nengine env ({} variables, secret values redacted):",
        intended.env.0.len()
    ));
    for line in intended.env.render().lines() {
        ui.say(&format!("  {line}"));
    }
    for (artifact, text) in &intended.artifacts {
        ui.say(&format!(
            "\n{} (rendered for the deploy, never written to the project):",
            artifact.file_name()
        ));
        for line in text.lines() {
            ui.say(&format!("  {line}"));
        }
    }
    let mut changes = plan.lines();
    if live {
        let drift = drift(cx, loaded, d)?;
        if plan.unchanged() {
            changes.extend(drift.iter().cloned());
        }
        fields.insert("drift".into(), json!(drift));
    }
    if changes.is_empty() {
        changes.push("nothing — the deployment is as last applied".to_string());
    }
    ui.say("\napply would:");
    for change in &changes {
        ui.say(&format!("  - {change}"));
    }
    let artifacts: BTreeMap<&str, &str> = intended
        .artifacts
        .iter()
        .map(|(a, t)| (a.name(), t.as_str()))
        .collect();
    fields.insert("engine_env".into(), intended.env.to_json());
    fields.insert(
        "fly_toml".into(),
        json!(intended.artifacts.get(&Artifact::FlyToml)),
    );
    fields.insert("artifacts".into(), json!(artifacts));
    fields.insert("changes".into(), json!(changes));
    Ok(Outcome { code: 0, fields })
}
