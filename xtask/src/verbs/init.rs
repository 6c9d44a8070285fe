//! `init [local|cloud] [FILE] [--force]`: a starter file that validates once filled in.
//! Its `:ID:` is the file's stem, so a new file never shares another deployment's
//! state; an ID another file in the same directory already uses is refused.

use std::path::Path;

use serde_json::json;

use super::{Ctx, Outcome, Verdict, write_new_file};
use crate::cli::InitArgs;
use crate::core::deployment::Place;
use crate::core::{drawer, names};

fn local(id: &str, program: &str) -> String {
    format!(
        "#+TITLE: A local deployment of the engine
# The drawer below is the whole deployment: five closed axes and a few open properties.
# The kit reads it and nothing else; nothing in this file is ever executed.
# Secrets never go here: `{program} secrets set NAME FILE`.

* {id} :deployment:
:PROPERTIES:
:ID: {id}
:ENGINE_PLACE: local
:TENANCY_MODE: single
:STORAGE: local-fs
:DATABASE: sqlite
:AUTH: trusted
:END:
"
    )
}

fn cloud(id: &str, program: &str) -> String {
    format!(
        "#+TITLE: A cloud deployment of the engine
# Fill in every <placeholder>, then: {program} plan FILE
# Secrets never go here: `{program} secrets set NAME FILE`.

* {id} :deployment:
:PROPERTIES:
:ID: {id}
:ENGINE_PLACE: cloud
:PROVIDER: fly
:APP: <your-app-name>
:REGION: <region, e.g. iad>
:TENANCY_MODE: single
:STORAGE: local-fs
:DATABASE: sqlite
:AUTH: trusted
:END:
"
    )
}

/// The file in `dir` (other than `path`) whose deployment ID is `id`, if any.
fn id_taken(dir: &Path, path: &Path, id: &str) -> Option<String> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries.flatten().map(|e| e.path()).find_map(|other| {
        if other.extension().is_none_or(|e| e != "org") || other.file_name() == path.file_name() {
            return None;
        }
        let text = std::fs::read_to_string(&other).ok()?;
        let stem = other.file_stem()?.to_str()?;
        let read = drawer::read(&text, None);
        (names::deployment_id(read.value("ID"), stem) == id).then(|| other.display().to_string())
    })
}

pub fn run(cx: &Ctx, args: &InitArgs, file: Option<&std::path::Path>) -> Verdict {
    let place = args.place.unwrap_or(Place::Local);
    let shown = file.map_or_else(|| "deployment.org".into(), std::path::Path::to_path_buf);
    let path = cx.edge.cwd.join(&shown);
    let stem = shown.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if !names::is_slug(stem) {
        return Err(format!(
            "the file name `{stem}` cannot be a deployment ID ({}) — name the file e.g. `staging.org`",
            names::SLUG_RULE
        )
        .into());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    if let Some(other) = id_taken(dir, &path, stem) {
        return Err(format!(
            "{other} already uses the ID `{stem}` — two files with one ID share one engine and one data dir; pick another file name"
        )
        .into());
    }
    let text = match place {
        Place::Local => local(stem, cx.program()),
        Place::Cloud => cloud(stem, cx.program()),
    };
    write_new_file(&path, &text, args.force)?;
    cx.ui.say(&format!(
        "wrote {} ({place}, ID `{stem}`) — next: {} plan {}",
        shown.display(),
        cx.program(),
        shown.display()
    ));
    if place == Place::Cloud {
        cx.ui
            .say("fill in the <placeholders> first; `validate` names each one left");
    }
    Ok(Outcome::ok(json!({
        "file": shown.display().to_string(),
        "place": place.to_string(),
        "id": stem,
    })))
}
