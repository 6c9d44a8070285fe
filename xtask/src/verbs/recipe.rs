//! `recipe new NAME` and `recipe check NAME` (SPEC §15, §18): the seam as a product.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::{Ctx, Outcome, Verdict};
use crate::cli::RecipeAction;
use crate::providers::check::Check;
use crate::providers::resolve::{BUNDLED, Recipes};
use crate::providers::scaffold;
use crate::state;

/// Seconds each action of `recipe check` may take (`WB_RECIPE_CHECK_TIMEOUT`).
const DEFAULT_TIMEOUT: u64 = 120;

pub fn run(cx: &Ctx, action: &RecipeAction) -> Verdict {
    match action {
        RecipeAction::New { name, dir, force } => new(cx, name, dir.as_deref(), *force),
        RecipeAction::Check {
            name,
            file,
            doubles,
            live,
        } => check(cx, name, file.as_deref(), doubles.as_deref(), *live),
    }
}

fn new(cx: &Ctx, name: &str, dir: Option<&str>, force: bool) -> Verdict {
    let dir = match dir {
        Some(d) => cx.edge.cwd.join(d),
        None => cx.edge.cwd.join("recipes"),
    };
    let spine = BUNDLED
        .iter()
        .find(|(p, _)| *p == "_recipe.sh")
        .map(|(_, t)| *t)
        .ok_or_else(|| "the kit was built without its spine".to_string())?;
    let written = scaffold::write(&dir, name, force, spine)?;
    cx.ui.say(&cx.ui.green(&format!(
        "wrote {} — eight hooks, each failing with \"not written yet\"",
        written.recipe.display()
    )));
    if let Some(spine) = &written.spine {
        cx.ui
            .say(&format!("  copied the spine to {}", spine.display()));
    }
    cx.ui.say(&format!(
        "  next: fill in the header and the hooks, then `{} recipe check {name} --doubles DIR`",
        cx.program()
    ));
    Ok(Outcome::ok(json!({
        "recipe": written.recipe.display().to_string(),
        "spine": written.spine.map(|p| p.display().to_string()),
    })))
}

fn check(cx: &Ctx, name: &str, file: Option<&str>, doubles: Option<&str>, live: bool) -> Verdict {
    let app_dir = state::app_dir(&cx.edge.vars)?;
    let recipes = Recipes::from_edge(cx.edge, &app_dir)?;
    let deployment = match file {
        None => None,
        Some(file) => {
            let loaded = crate::load::load(cx.edge, Some(std::path::Path::new(file)), None, false)?;
            let Some(d) = loaded.deployment() else {
                loaded.report(&cx.ui);
                return Err(format!("{} is not a valid deployment", loaded.shown).into());
            };
            if d.provider != name {
                return Err(format!(
                    "{} deploys with PROVIDER: {}, not `{name}`",
                    loaded.shown, d.provider
                )
                .into());
            }
            Some(d.clone())
        }
    };
    let timeout = match cx.edge.vars.get("WB_RECIPE_CHECK_TIMEOUT") {
        None => DEFAULT_TIMEOUT,
        Some(v) => v.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
            format!("WB_RECIPE_CHECK_TIMEOUT must be a whole number of seconds, not `{v}`")
        })?,
    };
    cx.ui.say(&format!(
        "checking the {name} recipe against the contract ({}; up to {timeout}s per action)…",
        if live { "live CLIs" } else { "doubles" }
    ));
    let checked = Check {
        edge: cx.edge,
        name,
        recipes: &recipes,
        deployment,
        doubles: doubles.map(PathBuf::from),
        live,
        timeout: Duration::from_secs(timeout),
    }
    .run()?;
    for warning in &checked.warnings {
        cx.ui.say(&format!("warning: {warning}"));
    }
    for (action, code) in &checked.ran {
        let code = code.map_or("timeout".to_string(), |c| format!("exit {c}"));
        cx.ui.say(&format!("  ran {action}: {code}"));
    }
    for f in &checked.findings {
        cx.ui.say(&format!("finding {}: {}", f.id, f.message));
    }
    let code = if checked.findings.is_empty() {
        cx.ui.say(&cx.ui.green(&format!(
            "{name}: no findings — the recipe keeps the contract"
        )));
        0
    } else {
        cx.ui.say(&format!(
            "{name}: {} finding(s) in {}",
            checked.findings.len(),
            checked.recipe.display()
        ));
        1
    };
    let findings: Vec<_> = checked
        .findings
        .iter()
        .map(|f| json!({"id": f.id, "message": f.message}))
        .collect();
    let ran: Vec<_> = checked
        .ran
        .iter()
        .map(|(a, c)| json!({"action": a, "exit": c}))
        .collect();
    Ok(Outcome::with_code(
        code,
        json!({
            "recipe": checked.recipe.display().to_string(),
            "findings": findings,
            "warnings": checked.warnings,
            "ran": ran,
        }),
    ))
}
