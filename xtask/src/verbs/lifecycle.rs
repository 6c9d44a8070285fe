//! The converging verbs — `apply`, `verify`, `status`, `logs`, `url`, `down` — route by
//! place: `local` never touches a recipe, `cloud` never touches a local backend.

use super::{Ctx, Loaded, Outcome};
use crate::deployment::Place;
use crate::flags::Verb;

/// `purge` is `down --purge --yes` (the flag parser refuses `--purge` without `--yes`).
pub fn run(ctx: &Ctx, verb: Verb, loaded: &Loaded, force: bool, purge: bool) -> Outcome {
    let Some(d) = loaded.deployment() else {
        loaded.report(ctx);
        return Outcome {
            code: 1,
            fields: loaded.json_fields(),
        };
    };
    for w in loaded.checked.warnings() {
        ctx.say(format!("warning: {}", w.located(&loaded.shown)));
    }
    match d.place {
        Place::Local if purge => Outcome::error(
            "`down --purge` is not implemented for local deployments yet — plain `down` keeps the data dir; remove it by hand to destroy the data",
        ),
        Place::Local => crate::local::run(ctx, verb, loaded, d, force),
        Place::Cloud => crate::cloud::run(ctx, verb, loaded, d, force, purge),
    }
}
