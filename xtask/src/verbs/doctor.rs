//! `doctor`: check prerequisites, say where recipes come from and which providers exist.

use serde_json::json;

use super::{Ctx, Outcome};
use crate::recipes::Recipes;
use crate::state;

pub fn run(ctx: &Ctx) -> Outcome {
    let app_dir = match state::app_dir() {
        Ok(dir) => dir,
        Err(e) => return Outcome::error(e),
    };
    let recipes = match Recipes::from_env(&app_dir) {
        Ok(r) => r,
        Err(e) => return Outcome::error(e),
    };
    if let Err(e) = recipes.materialize() {
        return Outcome::error(e);
    }
    let providers = recipes.providers();
    ctx.say(format!("app dir:   {}", app_dir.display()));
    ctx.say(format!(
        "recipes:   {} ({})",
        recipes.root.display(),
        recipes.rung.describe()
    ));
    ctx.say(format!(
        "providers: {}",
        if providers.is_empty() {
            "none".to_string()
        } else {
            providers.join(", ")
        }
    ));
    let mut checks = Vec::new();
    let mut ok = true;
    for (tool, required, why) in [
        ("bash", true, "runs provider recipes"),
        (
            "flyctl",
            false,
            "the fly recipe's CLI — https://fly.io/docs/flyctl/install/",
        ),
        ("podman", false, "a local container backend"),
        ("docker", false, "a local container backend"),
        ("krunvm", false, "a local microVM backend"),
    ] {
        let found = which(tool).or_else(|| if tool == "flyctl" { which("fly") } else { None });
        let line = match &found {
            Some(path) => format!("  ok       {tool:<8} {}", path.display()),
            None if required => {
                ok = false;
                format!("  MISSING  {tool:<8} {why}")
            }
            None => format!("  absent   {tool:<8} {why}"),
        };
        ctx.say(line);
        checks.push(json!({ "tool": tool, "found": found.map(|p| p.display().to_string()), "required": required }));
    }
    if ok {
        ctx.say(ctx.good("prereqs OK"));
    }
    Outcome::with_code(
        if ok { 0 } else { 1 },
        json!({
            "app_dir": app_dir.display().to_string(),
            "recipes": { "root": recipes.root.display().to_string(), "rung": recipes.rung.describe(), "providers": providers },
            "checks": checks,
        }),
    )
}

/// The first executable named `tool` on PATH.
pub fn which(tool: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}
