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

use std::io::{IsTerminal, Read};

use serde_json::{Value, json};

use super::{Ctx, Loaded, Outcome};
use crate::flags::SecretsAction;
use crate::recipes;
use crate::secrets::{CREDENTIAL_NAMES, Secret, Source, Store, is_secret_name};
use crate::state;

pub fn run(ctx: &Ctx, loaded: &Loaded, action: &SecretsAction) -> Outcome {
    if loaded.text.is_none() {
        loaded.report(ctx);
        return Outcome::error(format!("cannot read {}", loaded.shown));
    }
    let stem = loaded
        .path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("deployment");
    let id = loaded.drawer.value("ID").unwrap_or(stem).to_string();
    if !recipes::is_plain_name(&id) {
        return Outcome::error(format!(
            "the deployment's ID `{id}` is not a legal ID (^[a-z0-9][a-z0-9-]*$) — set `:ID:` in the drawer"
        ));
    }
    let store = Store::at(&loaded.app_dir.join(&id));
    let name = match action {
        SecretsAction::Set { name, .. }
        | SecretsAction::Generate { name }
        | SecretsAction::Unset { name } => Some(name),
        SecretsAction::List => None,
    };
    if let Some(name) = name
        && !is_secret_name(name)
    {
        return Outcome::with_code(
            2,
            json!({ "error": format!("`{name}` is not a secret name — use ^[A-Z][A-Z0-9_]*$ (e.g. STRIPE_API_KEY)") }),
        );
    }
    let result = match action {
        SecretsAction::Set { name, inline } => {
            set(ctx, loaded, &store, &id, name, inline.as_deref())
        }
        SecretsAction::Generate { name } => generate(ctx, loaded, &store, &id, name),
        SecretsAction::Unset { name } => unset(ctx, &store, &id, name),
        SecretsAction::List => list(ctx, loaded, &store, &id),
    };
    result.unwrap_or_else(Outcome::error)
}

fn set(
    ctx: &Ctx,
    loaded: &Loaded,
    store: &Store,
    id: &str,
    name: &str,
    inline: Option<&str>,
) -> Result<Outcome, String> {
    let value = match inline {
        Some(value) => value.to_string(),
        None => read_stdin(ctx, name)?,
    };
    if value.is_empty() {
        return Err(format!(
            "the value of {name} is empty (an empty value counts as unset) — to remove it run `cargo xtask deploy secrets unset {name} {}`",
            loaded.shown
        ));
    }
    if name == crate::cloud::BEARER {
        ctx.say(
            "warning: this replaces the control-plane bearer; the next apply deploys it, and WB_ENGINE_TOKEN must change with it",
        );
    }
    store.set(name, Secret::new(value))?;
    ctx.say(ctx.good(&format!(
        "stored {name} for {id} in {} (0600)",
        store.path().display()
    )));
    if std::env::var_os(name).is_some_and(|v| !v.is_empty()) {
        ctx.say(format!(
            "note: {name} is also exported in this shell; the store's value wins"
        ));
    }
    Ok(Outcome::ok(
        json!({ "id": id, "name": name, "source": "store" }),
    ))
}

/// The value on stdin: all of it, minus one trailing `\n`. From a terminal, one line
/// read with echo off.
fn read_stdin(ctx: &Ctx, name: &str) -> Result<String, String> {
    let stdin = std::io::stdin();
    let mut bytes = Vec::new();
    if stdin.is_terminal() {
        ctx.say(format!("value for {name} (input hidden), then Enter:"));
        let echo_off = stty("-echo");
        let mut line = String::new();
        let read = stdin.read_line(&mut line);
        if echo_off {
            stty("echo");
            eprintln!();
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

fn generate(
    ctx: &Ctx,
    loaded: &Loaded,
    store: &Store,
    id: &str,
    name: &str,
) -> Result<Outcome, String> {
    if store.load()?.contains_key(name) {
        return Err(format!(
            "{name} already has a value in the store — generating would replace it{}; to do that anyway, run `cargo xtask deploy secrets unset {name} {}` first",
            match name {
                crate::cloud::SIGNING_KEY => " and change the engine's identity",
                crate::cloud::BEARER => " and lock out every WB_ENGINE_TOKEN in use",
                _ => "",
            },
            loaded.shown
        ));
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    store.set(name, Secret::new(state::hex(&bytes)))?;
    ctx.say(ctx.good(&format!(
        "generated {name} for {id} (32 random bytes, hex) and stored it in {}",
        store.path().display()
    )));
    Ok(Outcome::ok(
        json!({ "id": id, "name": name, "source": "store", "generated": true }),
    ))
}

fn unset(ctx: &Ctx, store: &Store, id: &str, name: &str) -> Result<Outcome, String> {
    let removed = if store.path().exists() {
        store.unset(name)?
    } else {
        false
    };
    ctx.say(if removed {
        format!("removed {name} from {id}'s store")
    } else {
        format!("{name} was not in {id}'s store; nothing to do")
    });
    let still = std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if still {
        ctx.say(format!("note: {name} is still exported in this shell"));
    }
    Ok(Outcome::ok(json!({
        "id": id,
        "name": name,
        "removed": removed,
        "source": if still { "env" } else { "unset" },
    })))
}

/// Every declared secret and every credential the kit itself knows, with where its
/// value comes from (store · env · unset) and why it is wanted.
fn list(ctx: &Ctx, loaded: &Loaded, store: &Store, id: &str) -> Result<Outcome, String> {
    let stored = store.load()?;
    let source = |name: &str| -> &'static str {
        if stored.get(name).is_some_and(|v| !v.expose().is_empty()) {
            Source::Store.as_str()
        } else if std::env::var_os(name).is_some_and(|v| !v.is_empty()) {
            Source::Env.as_str()
        } else {
            "unset"
        }
    };
    let drawer = &loaded.drawer;
    let cloud = drawer.value("ENGINE_PLACE") == Some("cloud");
    let mut rows: Vec<(String, &'static str, String)> = Vec::new();
    for secret in &drawer.secrets {
        if !rows.iter().any(|(n, _, _)| *n == secret.name) {
            rows.push((
                secret.name.clone(),
                source(&secret.name),
                "declared (#+DEPLOY_SECRETS)".into(),
            ));
        }
    }
    for name in CREDENTIAL_NAMES {
        if rows.iter().any(|(n, _, _)| n == name) {
            continue;
        }
        let why = match *name {
            "WB_S3_KEY" | "WB_S3_SECRET" if drawer.value("STORAGE") == Some("s3") => {
                "needed (STORAGE: s3)"
            }
            "WB_DATABASE_URL" if drawer.value("DATABASE") == Some("postgres") => {
                "needed (DATABASE: postgres)"
            }
            "WB_PUBLIC_BEARER" if cloud => "control-plane bearer (the first cloud apply makes it)",
            "WB_SIGNING_KEY" if cloud => "engine identity (recommended: `secrets generate`)",
            _ => "not used by this deployment",
        };
        rows.push((name.to_string(), source(name), why.into()));
    }
    ctx.say(format!(
        "secrets of {id} (store: {}):",
        store.path().display()
    ));
    let width = rows.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
    for (name, source, why) in &rows {
        ctx.say(format!("  {name:<width$}  {source:<5}  {why}"));
    }
    let secrets: Vec<Value> = rows
        .iter()
        .map(|(name, source, why)| json!({ "name": name, "source": source, "about": why }))
        .collect();
    Ok(Outcome::ok(json!({
        "id": id,
        "store": store.path().display().to_string(),
        "secrets": secrets,
    })))
}
