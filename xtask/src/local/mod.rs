//! The local place: backends (docker, podman, krunvm, process), discovery, verify.

pub mod image;

use crate::deployment::Deployment;
use crate::flags::Verb;
use crate::verbs::{Ctx, Loaded, Outcome};

pub fn run(_ctx: &Ctx, verb: Verb, _loaded: &Loaded, _d: &Deployment, _force: bool) -> Outcome {
    Outcome::error(format!("local `{}` is not built yet", verb.name()))
}

/// `deploy local`: a zero-config local engine, no file needed.
pub fn zero_config(_ctx: &Ctx) -> Outcome {
    Outcome::error("`deploy local` is not built yet")
}
