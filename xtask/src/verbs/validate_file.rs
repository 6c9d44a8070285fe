//! `validate`: SPEC §4. Reads, checks, reports; touches nothing.

use super::{Ctx, Outcome, validation_fields};
use crate::load::Loaded;

pub fn run(cx: &Ctx, loaded: &Loaded) -> Outcome {
    loaded.report(&cx.ui);
    Outcome {
        code: if loaded.checked.valid() { 0 } else { 1 },
        fields: validation_fields(loaded),
    }
}
