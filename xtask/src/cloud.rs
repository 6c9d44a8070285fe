//! The cloud place: recipes run through the sealed spawn.

use crate::deployment::Deployment;
use crate::flags::Verb;
use crate::verbs::{Ctx, Loaded, Outcome};

pub fn run(_ctx: &Ctx, verb: Verb, _loaded: &Loaded, _d: &Deployment, _force: bool) -> Outcome {
    Outcome::error(format!("cloud `{}` is not built yet", verb.name()))
}
