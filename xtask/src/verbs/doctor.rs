//! `doctor`: probe what `apply` would need, for real — which local backend it would pick
//! (docker's daemon answering, podman able to talk to its engine), where recipes come
//! from, and each provider's CLI from its recipe's own `# wb-cli:` line.

use serde_json::{Value, json};

use super::{Ctx, Outcome, Verdict};
use crate::local::backend::registry::{self, Kind};
use crate::providers::cloud::missing_cli;
use crate::providers::resolve::Recipes;
use crate::state;

pub fn run(cx: &Ctx) -> Verdict {
    let edge = cx.edge;
    let app_dir = state::app_dir(&edge.vars)?;
    let recipes = Recipes::from_edge(edge, &app_dir)?;
    let providers = recipes.providers();
    let ui = &cx.ui;
    ui.say(&format!("app dir:   {}", app_dir.display()));
    ui.say(&format!(
        "recipes:   {} ({})",
        recipes.root.display(),
        recipes.rung.describe()
    ));
    let mut checks = Vec::new();
    let bash = edge.vars.which("bash");
    checks.push(check(
        ui,
        "bash",
        bash.is_some(),
        "runs provider recipes",
        "install bash",
    ));
    let docker = registry::docker_reachable(edge);
    checks.push(check(
        ui,
        "docker",
        docker,
        "a local container backend (its daemon answers `docker info`)",
        if edge.vars.which("docker").is_some() {
            "the docker client is installed but its daemon does not answer — start dockerd"
        } else {
            "install docker, or use podman"
        },
    ));
    let podman = podman_works(edge);
    checks.push(check(
        ui,
        "podman",
        podman,
        "a local container backend (`podman info` answers)",
        "install podman (rootless works), or use docker",
    ));
    let krunvm = edge.vars.which("krunvm").is_some();
    checks.push(check(
        ui,
        "krunvm",
        krunvm,
        "a local microVM backend",
        "optional",
    ));
    checks.extend(provider_clis(cx, &recipes, &providers));
    let pick = registry::choose(edge);
    match &pick {
        Ok(kind) => ui.say(&format!(
            "apply would run local deployments with: {}{}",
            kind.name(),
            if *kind == Kind::Process {
                " (no container backend works here)"
            } else {
                ""
            }
        )),
        Err(e) => ui.say(&format!("apply cannot pick a local backend: {e}")),
    }
    ui.say(&format!(
        "providers: {}",
        if providers.is_empty() {
            "none".to_string()
        } else {
            providers.join(", ")
        }
    ));
    let ok = bash.is_some() && pick.is_ok();
    if ok {
        ui.say(&ui.green("prereqs OK"));
    }
    Ok(Outcome::with_code(
        if ok { 0 } else { 1 },
        json!({
            "app_dir": app_dir.display().to_string(),
            "recipes": { "root": recipes.root.display().to_string(), "rung": recipes.rung.describe(), "providers": providers },
            "backend": pick.ok().map(|k| k.name()),
            "checks": checks,
        }),
    ))
}

fn check(ui: &crate::ui::Ui, tool: &str, ok: bool, why: &str, fix: &str) -> Value {
    if ok {
        ui.say(&format!("  ok       {tool:<12} {why}"));
    } else {
        ui.say(&format!("  absent   {tool:<12} {why} — {fix}"));
    }
    json!({ "tool": tool, "ok": ok, "about": why })
}

/// podman is on PATH and can reach its engine (`podman info` within 10 s).
fn podman_works(edge: &crate::edge::Edge) -> bool {
    let Some(podman) = edge.vars.which("podman") else {
        return false;
    };
    let mut cmd = std::process::Command::new(podman);
    cmd.arg("info");
    registry::status_within(cmd, std::time::Duration::from_secs(10))
}

/// Each provider's CLI, as its recipe's `# wb-cli:` line names it.
fn provider_clis(cx: &Ctx, recipes: &Recipes, providers: &[String]) -> Vec<Value> {
    let (edge, ui) = (cx.edge, &cx.ui);
    let mut checks = Vec::new();
    for provider in providers {
        let cli = recipes.header(provider).map(|h| h.cli).unwrap_or_default();
        if cli.is_empty() {
            continue;
        }
        let missing = missing_cli(edge, &cli).map(|m| m.join(" or "));
        let name = cli
            .iter()
            .map(|g| g.join("|"))
            .collect::<Vec<_>>()
            .join(" ");
        checks.push(check(
            ui,
            &name,
            missing.is_none(),
            &format!("the {provider} recipe's CLI"),
            &format!(
                "install {} to deploy with PROVIDER: {provider}",
                missing.unwrap_or_default()
            ),
        ));
    }
    checks
}
