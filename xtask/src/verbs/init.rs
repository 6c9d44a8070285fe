//! `init [local|cloud] [FILE] [--force]`: a starter file that validates once filled in.

use serde_json::json;

use super::{Ctx, Outcome, write_new_file};
use crate::deployment::Place;

const LOCAL: &str = "\
#+TITLE: A local deployment of the engine
# The drawer below is the whole deployment: five closed axes and a few open properties.
# The kit reads it and nothing else; nothing in this file is ever executed.
# Secrets never go here: `cargo xtask deploy secrets set NAME FILE`.

* local engine :deployment:
:PROPERTIES:
:ID: local
:ENGINE_PLACE: local
:TENANCY_MODE: single
:STORAGE: local-fs
:DATABASE: sqlite
:AUTH: trusted
:END:
";

const CLOUD: &str = "\
#+TITLE: A cloud deployment of the engine
# Fill in every <placeholder>, then: cargo xtask deploy plan FILE
# Secrets never go here: `cargo xtask deploy secrets set NAME FILE`.

* cloud engine :deployment:
:PROPERTIES:
:ID: <your-deployment-id>
:ENGINE_PLACE: cloud
:PROVIDER: fly
:APP: <your-app-name>
:REGION: <region, e.g. iad>
:TENANCY_MODE: single
:STORAGE: local-fs
:DATABASE: sqlite
:AUTH: trusted
:END:
";

pub fn run(ctx: &Ctx, place: Option<Place>, file: Option<&str>, force: bool) -> Outcome {
    let place = place.unwrap_or(Place::Local);
    let path = std::path::PathBuf::from(file.unwrap_or("deployment.org"));
    let text = match place {
        Place::Local => LOCAL,
        Place::Cloud => CLOUD,
    };
    if let Err(e) = write_new_file(&path, text, force) {
        return Outcome::error(e);
    }
    ctx.say(format!(
        "wrote {} ({place}) — next: cargo xtask deploy plan {}",
        path.display(),
        path.display()
    ));
    if place == Place::Cloud {
        ctx.say("fill in the <placeholders> first; `validate` names each one left");
    }
    Outcome::ok(json!({ "file": path.display().to_string(), "place": place.to_string() }))
}
