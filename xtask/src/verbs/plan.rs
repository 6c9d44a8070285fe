//! `plan`: validate, then show the engine env (secrets redacted), the fly.toml (cloud),
//! and what `apply` would change against the last applied record. Read-only.

use serde_json::{Value, json};

use super::{Ctx, Loaded, Outcome, properties_json};
use crate::deployment::{Axis, Deployment, Place};
use crate::engine_env::{EngineEnv, engine_env};
use crate::fly_toml;
use crate::recipes::Recipes;
use crate::secrets::DeployEnv;
use crate::state::{self, Fingerprint};

/// What the deployment would become: the inputs every `apply` converges to.
pub struct Intended {
    pub env: EngineEnv,
    pub fly_toml: Option<String>,
    /// The recipe's text (spine + bootstrap.sh) for cloud deployments, where readable.
    pub recipe: Option<String>,
}

impl Intended {
    pub fn of(d: &Deployment, deploy_env: &DeployEnv, recipes: Option<&Recipes>) -> Intended {
        let recipe = (d.place == Place::Cloud)
            .then(|| recipe_text(d, recipes))
            .flatten();
        Intended {
            env: engine_env(d, deploy_env),
            fly_toml: fly_toml::render(d),
            recipe,
        }
    }

    /// The comparable record of this intent (values hashed with the deployment's salt).
    pub fn fingerprint(&self, d: &Deployment, salt: &[u8]) -> Fingerprint {
        let mut f = Fingerprint::default();
        f.put("place", d.place.as_str(), salt);
        f.put("image", &d.image, salt);
        if d.place == Place::Cloud {
            f.put("provider", &d.provider, salt);
        }
        for (name, value) in &self.env.0 {
            f.put(format!("env:{name}"), value.expose(), salt);
        }
        if let Some(toml) = &self.fly_toml {
            f.put("fly.toml", toml, salt);
        }
        if let Some(recipe) = &self.recipe {
            f.put("recipe", recipe, salt);
        }
        f
    }
}

/// The recipe as it would run: bundled text, or the files on disk.
fn recipe_text(d: &Deployment, recipes: Option<&Recipes>) -> Option<String> {
    let recipes = recipes?;
    if recipes.rung == crate::recipes::Rung::Bundled {
        let want = format!("{}/bootstrap.sh", d.provider);
        let pick = |path: &str| {
            crate::recipes::BUNDLED
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, t)| *t)
        };
        return Some(format!("{}{}", pick("_recipe.sh")?, pick(&want)?));
    }
    let spine = std::fs::read_to_string(recipes.root.join("_recipe.sh")).ok()?;
    let boot = std::fs::read_to_string(recipes.bootstrap(&d.provider)).ok()?;
    Some(format!("{spine}{boot}"))
}

/// What `apply` would do, in words, against the last applied record (read-only: a
/// deployment never applied from this machine has no salt yet, and needs none).
pub fn changes(d: &Deployment, intended: &Intended, app_dir: &std::path::Path) -> Vec<String> {
    let dir = app_dir.join(&d.id);
    let mut out = Vec::new();
    if d.place == Place::Cloud && intended.env.get("WB_PUBLIC_BEARER").is_none() {
        out.push(
            "generate WB_PUBLIC_BEARER (once, never rotated): it guards the engine's control plane"
                .to_string(),
        );
    }
    let (Some(before), Ok(salt)) = (state::last_applied(&dir), std::fs::read(dir.join("salt")))
    else {
        out.push("create the deployment (never applied from this machine)".to_string());
        return out;
    };
    let diff = intended.fingerprint(d, &salt).diff(&before);
    if diff.is_empty() && out.is_empty() {
        out.push("nothing — the deployment is as last applied".to_string());
    }
    for (part, how) in diff {
        out.push(format!("{part} {how}"));
    }
    out
}

pub fn run(ctx: &Ctx, loaded: &Loaded) -> Outcome {
    loaded.report(ctx);
    let mut fields = loaded.json_fields();
    fields.insert("properties".into(), properties_json(&loaded.drawer));
    let Some(d) = loaded.deployment() else {
        fields.insert("engine_env".into(), Value::Null);
        fields.insert("fly_toml".into(), Value::Null);
        return Outcome { code: 1, fields };
    };
    let intended = Intended::of(d, &loaded.deploy_env, loaded.recipes.as_ref().ok());
    ctx.say(format!(
        "\nengine env ({} variables, secret values redacted):",
        intended.env.0.len()
    ));
    for line in intended.env.render().lines() {
        ctx.say(format!("  {line}"));
    }
    if let Some(toml) = &intended.fly_toml {
        ctx.say("\nfly.toml (rendered for the deploy, never written to the project):");
        for line in toml.lines() {
            ctx.say(format!("  {line}"));
        }
    }
    let changes = changes(d, &intended, &loaded.app_dir);
    ctx.say("\napply would:");
    for change in &changes {
        ctx.say(format!("  - {change}"));
    }
    fields.insert("engine_env".into(), intended.env.to_json());
    fields.insert(
        "fly_toml".into(),
        intended
            .fly_toml
            .clone()
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    fields.insert("changes".into(), json!(changes));
    Outcome { code: 0, fields }
}
