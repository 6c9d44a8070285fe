//! The deploy kit's library: a pure core ([`core`]: drawer → deployment → engine env,
//! artifacts, plan) and a thin shell around it — the edge that captures the world once,
//! the state on disk, the places ([`local`] backends, [`providers`] recipes) and the
//! verbs, the only printers. [`run`] is the one place an outcome becomes a JSON object
//! and an exit code. See README.md and docs/.

pub mod cli;
pub mod core;
pub mod edge;
pub mod error;
pub mod load;
pub mod local;
pub mod providers;
pub mod report;
pub mod state;
pub mod ui;
pub mod verbs;

use serde_json::{Map, Value, json};

use crate::cli::Cmd;
use crate::edge::Edge;
use crate::error::Error;
use crate::ui::Ui;
use crate::verbs::{Ctx, Failure, Outcome};

/// The kit, from a captured edge to an exit code. `standalone`: the `wb-deploy` binary,
/// whose verbs are at the top level; else the `xtask` binary (`xtask deploy <verb>`).
pub fn run(edge: Edge, standalone: bool) -> i32 {
    let json = cli::wants_json(&edge.args);
    let cmd = cli::parse(edge.args.clone(), standalone, &edge.program, &edge.cwd);
    let ui = Ui::new(&edge, json);
    let (verb, result) = match cmd {
        Err(e) => (None, Err(Failure::from(e))),
        Ok(cmd) => dispatch(&edge, cmd),
    };
    finish(&ui, verb, result)
}

/// Runs one command; returns the verb's name for the JSON object.
fn dispatch(edge: &Edge, cmd: Cmd) -> (Option<&'static str>, Result<Outcome, Failure>) {
    match cmd {
        Cmd::Help { text, json } => {
            if json {
                return (Some("help"), Ok(Outcome::ok(json!({ "help": text }))));
            }
            ui::out(&text);
            (None, Ok(Outcome::default()))
        }
        Cmd::Version { json } => {
            let version = env!("CARGO_PKG_VERSION");
            if !json {
                ui::out(&format!("{} {version}\n", edge.program));
            }
            (
                Some("version"),
                Ok(Outcome::ok(json!({ "version": version }))),
            )
        }
        Cmd::Completions { shell } => {
            let name = edge
                .program
                .split_whitespace()
                .next()
                .unwrap_or("wb-deploy");
            let name = if name == "cargo" { "wb-deploy" } else { name };
            ui::out(&verbs::completions::script(shell, name));
            (None, Ok(Outcome::default()))
        }
        Cmd::Ci => (
            None,
            verbs::ci::run(edge)
                .map(|()| Outcome::default())
                .map_err(Failure::from),
        ),
        Cmd::EngineImage { tag } => {
            let ui = Ui::new(edge, false);
            let built = local::backend::image::build_command(edge, &ui, tag.as_deref());
            (
                None,
                built
                    .map(|line| {
                        ui.say(&ui.green(&line));
                        Outcome::default()
                    })
                    .map_err(|e| Failure::from(Error::Failed(e))),
            )
        }
        Cmd::Deploy(deploy) => {
            let cx = Ctx {
                edge,
                ui: Ui::new(edge, deploy.json),
                lock_wait: std::time::Duration::from_secs(deploy.lock_wait),
                preview: deploy.preview.clone(),
            };
            let result = verbs::run(
                &cx,
                &deploy.verb,
                deploy.file.as_deref(),
                deploy.id.as_deref(),
            );
            (Some(deploy.verb.name()), result)
        }
    }
}

/// Prints the error line and the JSON object (with `--json`), and gives the exit code.
fn finish(ui: &Ui, verb: Option<&str>, result: Result<Outcome, Failure>) -> i32 {
    let (code, mut fields, error) = match result {
        Ok(outcome) => (outcome.code, outcome.fields, None),
        Err(failure) => (failure.error.code(), failure.fields, Some(failure.error)),
    };
    if let Some(error) = &error {
        ui.say(&format!(
            "{}: {}",
            ui.paint("1;31", "error"),
            error.message()
        ));
    }
    if ui.json {
        let mut object = Map::new();
        object.insert("ok".into(), Value::Bool(code == 0));
        object.insert(
            "verb".into(),
            verb.map_or(Value::Null, |v| Value::String(v.into())),
        );
        if let Some(error) = &error {
            fields.insert(
                "error".into(),
                json!({ "kind": error.kind(), "message": error.message() }),
            );
        }
        object.extend(fields);
        ui::out(&format!("{}\n", Value::Object(object)));
    }
    code
}
