//! `validate`: SPEC §4. Reads, checks, reports; touches nothing.

use super::{Ctx, Loaded, Outcome};

pub fn run(ctx: &Ctx, loaded: &Loaded) -> Outcome {
    loaded.report(ctx);
    Outcome {
        code: if loaded.checked.valid() { 0 } else { 1 },
        fields: loaded.json_fields(),
    }
}
