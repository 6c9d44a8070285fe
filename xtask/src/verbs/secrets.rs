//! `secrets set|generate|list|unset` (SPEC §8).

use super::{Ctx, Loaded, Outcome};
use crate::flags::SecretsAction;

pub fn run(_ctx: &Ctx, _loaded: &Loaded, _action: &SecretsAction) -> Outcome {
    Outcome::error("`secrets` is not built yet")
}
