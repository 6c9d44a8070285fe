//! `secrets set|generate|list|unset` (SPEC §8): the deployment's store, never a value
//! printed.
//!
//! Works on any readable file, valid or not — a declared secret without a value makes
//! the file invalid, and this verb is how it gets one. The deployment is named by the
//! drawer's `:ID:` (else the file's stem), as everywhere else.
//!
//! `set NAME` reads the value from stdin and keeps its bytes exactly, except that one
//! trailing `\n` is dropped (what `echo`, `<<<` and a typed line add); send a value that
//! must end in a newline with one extra. From a terminal it reads one line, not echoed.

use std::io::Read;

use serde_json::{Value, json};

use super::{Ctx, Failure, Outcome, Verdict};
use crate::cli::SecretsAction;
use crate::core::credentials::{BEARER, CREDENTIAL_NAMES, Needs, SIGNING_KEY, Want};
use crate::core::deployment::{Axis, Database, Place, Storage};
use crate::core::names;
use crate::core::plan::hex;
use crate::core::secret::{Secret, Source};
use crate::error::Error;
use crate::load::Loaded;
use crate::report::Report;
use crate::state::store::Store;

pub fn run(cx: &Ctx, loaded: &Loaded, action: &SecretsAction) -> Verdict {
    if loaded.text.is_none() {
        loaded.report(&cx.ui);
        return Err(format!("cannot read {}", loaded.shown).into());
    }
    let id = &loaded.id;
    if !names::is_slug(id) {
        return Err(format!(
            "the deployment's ID `{id}` is not a legal ID ({}) — set `:ID:` in the drawer",
            names::SLUG_RULE
        )
        .into());
    }
    let store = loaded.paths().store();
    if let SecretsAction::Set { name, .. }
    | SecretsAction::Generate { name }
    | SecretsAction::Unset { name } = action
    {
        check_name(
            cx,
            loaded,
            name,
            matches!(action, SecretsAction::Unset { .. }),
        )?;
    }
    match action {
        SecretsAction::Set { name, inline } => set(cx, loaded, &store, name, inline.as_deref()),
        SecretsAction::Generate { name } => generate(cx, loaded, &store, name),
        SecretsAction::Unset { name } => unset(cx, loaded, &store, name),
        SecretsAction::List => list(cx, loaded, &store),
        SecretsAction::Stage => stage(cx, loaded),
    }
}

/// `secrets stage`: the recipe's `secrets` action (the app exists, the whole engine env
/// is stored with the provider, nothing restarts); the next `apply` rolls it out.
fn stage(cx: &Ctx, loaded: &Loaded) -> Verdict {
    let Some(d) = loaded.deployment() else {
        loaded.report(&cx.ui);
        return Err(format!("{} is not a valid deployment", loaded.shown).into());
    };
    if d.place != crate::core::deployment::Place::Cloud {
        return Err(
            "`secrets stage` is for cloud deployments — a local engine reads the store at `apply`"
                .to_string()
                .into(),
        );
    }
    if !loaded.deploy_env.has(crate::core::credentials::BEARER) {
        return Err(format!(
            "{} is not set — run `{} apply {}` first (it makes the bearer the engine env needs)",
            crate::core::credentials::BEARER,
            cx.edge.program,
            loaded.shown
        )
        .into());
    }
    let paths = super::paths(loaded, d);
    let recipes = loaded.recipes.clone()?;
    let cloud = super::cloud(cx, loaded, d, &paths, &recipes);
    cloud.stage()?;
    cx.ui.say(&cx.ui.green(&format!(
        "staged — the {} recipe stored the engine env for {}; the next `apply` rolls it out",
        d.provider, d.id
    )));
    Ok(Outcome::ok(serde_json::json!({
        "id": d.id,
        "provider": d.provider,
    })))
}

fn needs(loaded: &Loaded) -> Needs {
    let drawer = &loaded.drawer;
    Needs {
        place: drawer.value("ENGINE_PLACE").and_then(Place::parse),
        storage: drawer.value("STORAGE").and_then(Storage::parse),
        database: drawer.value("DATABASE").and_then(Database::parse),
    }
}

/// A legal name that the deployment declares or the kit itself uses; anything else
/// would be stored and never shipped (`unset` may remove any stored name).
fn check_name(cx: &Ctx, loaded: &Loaded, name: &str, unset: bool) -> Result<(), Failure> {
    if !names::is_secret_name(name) {
        return Err(Error::Usage(format!(
            "`{name}` is not a secret name — use {} (e.g. STRIPE_API_KEY)",
            names::SECRET_RULE
        ))
        .into());
    }
    let declared = loaded.drawer.secrets.iter().any(|s| s.name == name);
    if unset || declared || CREDENTIAL_NAMES.contains(&name) {
        return Ok(());
    }
    Err(format!(
        "{} does not declare `{name}`, so no apply would ship it — add the line `#+DEPLOY_SECRETS: {name}` to the file, then run `{} secrets set {name} {}` again",
        loaded.shown,
        cx.program(),
        loaded.shown
    )
    .into())
}

fn set(cx: &Ctx, loaded: &Loaded, store: &Store, name: &str, inline: Option<&str>) -> Verdict {
    let value = match inline {
        Some(value) => {
            cx.ui.warn(&format!(
                "the value of {name} was on the command line, where `ps` and shell history see it — next time pipe it in: `{} secrets set {name} {} < file`",
                cx.program(),
                loaded.shown
            ));
            value.to_string()
        }
        None => read_stdin(cx, name)?,
    };
    if value.is_empty() {
        return Err(format!(
            "the value of {name} is empty (an empty value counts as unset) — to remove it run `{} secrets unset {name} {}`",
            cx.program(),
            loaded.shown
        )
        .into());
    }
    if name == BEARER {
        cx.ui.warn("this replaces the control-plane bearer; the next apply deploys it, and WB_ENGINE_TOKEN must change with it");
    }
    store.set(name, Secret::new(value))?;
    cx.ui.say(&cx.ui.green(&format!(
        "stored {name} for {} in {} (0600)",
        loaded.id,
        store.path().display()
    )));
    if cx.edge.vars.is_set(name) {
        cx.ui.say(&format!(
            "note: {name} is also exported in this shell; the store's value wins"
        ));
    }
    Ok(Outcome::ok(
        json!({ "id": loaded.id, "name": name, "source": "store" }),
    ))
}

/// The value on stdin: all of it, minus one trailing `\n`. From a terminal, one line
/// read with echo off.
fn read_stdin(cx: &Ctx, name: &str) -> Result<String, String> {
    let stdin = std::io::stdin();
    let mut bytes = Vec::new();
    if cx.edge.stdin_tty {
        cx.ui
            .say(&format!("value for {name} (input hidden), then Enter:"));
        let echo_off = stty("-echo");
        let mut line = String::new();
        let read = stdin.read_line(&mut line);
        if echo_off {
            stty("echo");
            cx.ui.say("");
        }
        read.map_err(|e| format!("cannot read the value from the terminal: {e}"))?;
        bytes = line.into_bytes();
    } else {
        stdin
            .lock()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read the value from stdin: {e}"))?;
    }
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    String::from_utf8(bytes).map_err(|_| format!("the value of {name} on stdin is not UTF-8 text"))
}

/// `stty MODE` on the terminal that is our stdin; whether it worked.
fn stty(mode: &str) -> bool {
    std::process::Command::new("stty")
        .arg(mode)
        .stdin(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn generate(cx: &Ctx, loaded: &Loaded, store: &Store, name: &str) -> Verdict {
    if store.load()?.contains_key(name) {
        return Err(format!(
            "{name} already has a value in the store — generating would replace it{}; to do that anyway, run `{} secrets unset {name} {}` first",
            match name {
                SIGNING_KEY => " and change the engine's identity",
                BEARER => " and lock out every WB_ENGINE_TOKEN in use",
                _ => "",
            },
            cx.program(),
            loaded.shown
        )
        .into());
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    store.set(name, Secret::new(hex(&bytes)))?;
    cx.ui.say(&cx.ui.green(&format!(
        "generated {name} for {} (32 random bytes, hex) and stored it in {}",
        loaded.id,
        store.path().display()
    )));
    Ok(Outcome::ok(
        json!({ "id": loaded.id, "name": name, "source": "store", "generated": true }),
    ))
}

fn unset(cx: &Ctx, loaded: &Loaded, store: &Store, name: &str) -> Verdict {
    let removed = store.path().exists() && store.unset(name)?;
    let id = &loaded.id;
    cx.ui.say(&if removed {
        format!("removed {name} from {id}'s store")
    } else {
        format!("{name} was not in {id}'s store; nothing to do")
    });
    let still = cx.edge.vars.is_set(name);
    if still {
        cx.ui
            .say(&format!("note: {name} is still exported in this shell"));
    }
    Ok(Outcome::ok(json!({
        "id": id,
        "name": name,
        "removed": removed,
        "source": if still { "env" } else { "unset" },
    })))
}

/// Every declared secret, every credential the kit itself knows, and every other name
/// in the store, with where its value comes from (store · env · unset) and why.
fn list(cx: &Ctx, loaded: &Loaded, store: &Store) -> Verdict {
    let stored = store.load()?;
    let source = |name: &str| -> &'static str {
        if stored.get(name).is_some_and(|v| !v.expose().is_empty()) {
            Source::Store.as_str()
        } else if cx.edge.vars.is_set(name) {
            Source::Env.as_str()
        } else {
            "unset"
        }
    };
    let needs = needs(loaded);
    let mut rows: Vec<(String, &'static str, String)> = Vec::new();
    let push = |name: &str, why: String, rows: &mut Vec<(String, &'static str, String)>| {
        if !rows.iter().any(|(n, _, _)| n == name) {
            rows.push((name.to_string(), source(name), why));
        }
    };
    for secret in &loaded.drawer.secrets {
        push(
            &secret.name,
            "declared (#+DEPLOY_SECRETS)".into(),
            &mut rows,
        );
    }
    for name in CREDENTIAL_NAMES {
        let why = match needs.want(name) {
            Some(Want::Required(why) | Want::Kit(why)) => why,
            None => "not used by this deployment",
        };
        push(name, why.into(), &mut rows);
    }
    for name in stored.keys() {
        push(
            name,
            "stored, but nothing declares it: no apply ships it".into(),
            &mut rows,
        );
    }
    cx.ui.say(&format!(
        "secrets of {} (store: {}):",
        loaded.id,
        store.path().display()
    ));
    let width = rows.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
    for (name, source, why) in &rows {
        cx.ui.say(&format!("  {name:<width$}  {source:<5}  {why}"));
    }
    let secrets: Vec<Value> = rows
        .iter()
        .map(|(name, source, why)| json!({ "name": name, "source": source, "about": why }))
        .collect();
    Ok(Outcome::ok(json!({
        "id": loaded.id,
        "store": store.path().display().to_string(),
        "secrets": secrets,
    })))
}
