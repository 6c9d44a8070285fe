//! `doctor`: probe what `apply` would need, for real — which local backend it would pick
//! (docker's daemon answering, podman able to talk to its engine), where recipes come
//! from, and each provider's CLI from its recipe's own `# wb-cli:` line.

use serde_json::{Value, json};

use super::{Ctx, Outcome, Verdict};
use crate::core::deployment::DEFAULT_IMAGE;
use crate::edge::Edge;
use crate::local::backend::container::rlimit_hint;
use crate::local::backend::image::{self, REFERENCE_IMAGE};
use crate::local::backend::registry::{self, Kind};
use crate::providers::cloud::missing_cli;
use crate::providers::resolve::Recipes;
use crate::state;

pub fn run(cx: &Ctx, file: Option<&std::path::Path>) -> Verdict {
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
    let (first, pick) = backends(cx, &mut checks);
    checks.extend(provider_clis(cx, &recipes, &providers));
    match &pick {
        Ok(kind) => ui.say(&format!(
            "apply would run local deployments with: {}{}",
            kind.name(),
            match first {
                Some(f) if f != *kind => format!(" ({} is tried first and gives way)", f.name()),
                _ if *kind == Kind::Process => " (no container backend works here)".into(),
                _ => String::new(),
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
    let cli_missing = deployment_cli(cx, &recipes, file)?;
    // Exit 1 only when no local backend works, or the deployment's provider CLI is
    // missing (SPEC §18); everything else is advice.
    let ok = pick.is_ok() && !cli_missing;
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

/// The local backends, each probed for real (one check line each), then which one
/// `apply` would run: `(the first candidate, the first that works)`.
fn backends(cx: &Ctx, checks: &mut Vec<Value>) -> (Option<Kind>, Result<Kind, String>) {
    let (edge, ui) = (cx.edge, &cx.ui);
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
    let image = engine_image(edge);
    let podman = podman_probe(edge);
    checks.push(check(
        ui,
        "podman",
        podman.is_ok(),
        "a local container backend (it ran a container: `podman init` of the engine image)",
        podman
            .as_ref()
            .err()
            .map(String::as_str)
            .unwrap_or_default(),
    ));
    let krunvm = edge.vars.which("krunvm").is_some();
    checks.push(check(
        ui,
        "krunvm",
        krunvm,
        "a local microVM backend",
        "optional",
    ));
    let program = &edge.program;
    checks.push(check(
        ui,
        "engine image",
        image.is_ok(),
        &format!(
            "what the container backends run ({})",
            image
                .as_ref()
                .map(|(_, r)| r.as_str())
                .unwrap_or(REFERENCE_IMAGE)
        ),
        image.as_ref().err().map(String::as_str).unwrap_or_default(),
    ));
    let engine = process_engine(edge);
    checks.push(check(
        ui,
        "wb-engine",
        engine.is_ok(),
        &format!(
            "the process backend's engine{}",
            engine
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ),
        engine
            .as_ref()
            .err()
            .map(String::as_str)
            .unwrap_or_default(),
    ));
    let works = |kind: Kind| match kind {
        Kind::Docker => docker,
        Kind::Podman => podman.is_ok(),
        Kind::Krunvm => krunvm,
        Kind::Process => engine.is_ok(),
    };
    let first = registry::choose(edge).ok();
    let pick = registry::candidates(edge, &[])
        .map(|(kinds, _)| kinds.into_iter().find(|k| works(*k)))
        .and_then(|k| {
            k.ok_or_else(|| format!("no local backend works here — see each line above; `{program} doctor` again after the fix"))
        });
    (first, pick)
}

/// With FILE (or a `./deployment.org`), a cloud deployment's own provider CLI: `true`
/// when it is missing (then `doctor` exits 1, as `apply` would refuse).
fn deployment_cli(
    cx: &Ctx,
    recipes: &Recipes,
    file: Option<&std::path::Path>,
) -> Result<bool, String> {
    let (edge, ui) = (cx.edge, &cx.ui);
    if file.is_none() && !edge.cwd.join("deployment.org").is_file() {
        return Ok(false);
    }
    let loaded = crate::load::load(edge, file, None, false)?;
    let Some(d) = loaded.deployment() else {
        ui.say(&format!(
            "{}: not a valid deployment — `{} validate {}` says why",
            loaded.shown, edge.program, loaded.shown
        ));
        return Ok(false);
    };
    if d.place != crate::core::deployment::Place::Cloud {
        return Ok(false);
    }
    let cli = recipes
        .header(&d.provider)
        .map(|h| h.cli)
        .unwrap_or_default();
    match missing_cli(edge, &cli) {
        Some(missing) => {
            ui.say(&format!(
                "{}: PROVIDER: {} needs {} on PATH — install it; `apply` refuses without it",
                loaded.shown,
                d.provider,
                missing.join(" or ")
            ));
            Ok(true)
        }
        None => Ok(false),
    }
}

/// The engine image the container backends would run: `(tool, reference)`, else what
/// to do. Asked of docker when its daemon answers, else podman.
fn engine_image(edge: &Edge) -> Result<(String, String), String> {
    let tool = if registry::docker_reachable(edge) {
        "docker"
    } else if edge.vars.which("podman").is_some() {
        "podman"
    } else {
        return Err("no container tool to hold it (only the process backend can run)".into());
    };
    let found = image::image_ids(tool, &[DEFAULT_IMAGE, REFERENCE_IMAGE]);
    for reference in [DEFAULT_IMAGE, REFERENCE_IMAGE] {
        if found.iter().any(|(t, _)| t == reference) {
            return Ok((tool.to_string(), reference.to_string()));
        }
    }
    Err(format!(
        "neither {DEFAULT_IMAGE} nor {REFERENCE_IMAGE} is in {tool}'s store — the first apply builds {REFERENCE_IMAGE} (in the kit's repository: `cargo xtask engine image`), or `{tool} pull {DEFAULT_IMAGE}`"
    ))
}

/// podman can run a container: `podman info` answers, then a container of the engine
/// image is created and initialized by the OCI runtime (namespaces, mounts, rlimits —
/// where a rootless or nested host fails) and removed, each step within 20 s. The
/// entrypoint never runs. `Err` says what to do.
fn podman_probe(edge: &Edge) -> Result<(), String> {
    let Some(podman) = edge.vars.which("podman") else {
        return Err("install podman (rootless works), or use docker".into());
    };
    let limit = std::time::Duration::from_secs(20);
    let mut info = std::process::Command::new(&podman);
    info.arg("info");
    if !registry::status_within(info, limit) {
        return Err("`podman info` fails or hangs — podman cannot reach its engine; run `podman info` to see why".into());
    }
    let found = image::image_ids("podman", &[DEFAULT_IMAGE, REFERENCE_IMAGE]);
    let Some((image, _)) = found.iter().find(|(t, _)| !t.is_empty()) else {
        return Err(format!(
            "`podman info` answers, but no engine image is in podman's store to try a container with — the first apply builds {REFERENCE_IMAGE}"
        ));
    };
    let name = format!("wb-doctor-{}", std::process::id());
    let run = |args: &[&str]| {
        duct::cmd(&podman, args)
            .stdout_null()
            .stderr_capture()
            .stdin_null()
            .unchecked()
            .run()
    };
    let result = match run(&["create", "--name", &name, image.as_str()]) {
        Ok(out) if out.status.success() => match run(&["init", &name]) {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
            Err(e) => Err(e.to_string()),
        },
        Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        Err(e) => Err(e.to_string()),
    };
    let _ = run(&["rm", "-f", &name]);
    result.map_err(|why| {
        let last = why.lines().last().unwrap_or_default().to_string();
        match rlimit_hint(&why) {
            Some(hint) => format!("podman cannot run a container here ({last}) — {hint}"),
            None => format!("podman cannot run a container here: {last}"),
        }
    })
}

/// Where the process backend's engine comes from, without building it.
fn process_engine(edge: &Edge) -> Result<String, String> {
    if let Some(path) = edge.vars.os("WB_ENGINE_BIN") {
        let path = std::path::Path::new(path);
        return if path.is_file() {
            Ok(format!("WB_ENGINE_BIN={}", path.display()))
        } else {
            Err(format!(
                "WB_ENGINE_BIN={} is not a file — point it at a wb-engine binary",
                path.display()
            ))
        };
    }
    if let Ok(root) = image::repo_root(edge) {
        return Ok(format!(
            "the workspace's, built on demand in {}",
            root.display()
        ));
    }
    edge.vars
        .which("wb-engine")
        .map(|p| format!("{} (on PATH)", p.display()))
        .ok_or_else(|| {
            "set WB_ENGINE_BIN to a wb-engine binary, or put `wb-engine` on PATH".to_string()
        })
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
