//! Stage 3: combinations that cannot coexist, judged on the values as given or
//! defaulted, only where each side is legal.

use super::enums::Axes;
use super::{Problems, Stage, View};
use crate::core::deployment::{Auth, Database, Tenancy};
use crate::core::diagnostic::Diagnostic;

pub(super) fn check(view: &View, axes: &Axes, p: &mut Problems) {
    // A refused value is `None` while its key is present: no combination is judged on it.
    let legal = |key: &str, parsed: bool| parsed || !view.has(key);
    if !legal("TENANCY_MODE", axes.tenancy.is_some()) || axes.tenancy_d() != Tenancy::Multi {
        return;
    }
    let line = view.line_of("TENANCY_MODE");
    if axes.database_d() == Database::Sqlite && legal("DATABASE", axes.database.is_some()) {
        p.error(
            Stage::Combinations,
            Diagnostic::error(
                line,
                "TENANCY_MODE: multi on DATABASE: sqlite serializes every tenant through one writer — set DATABASE: postgres",
            ),
        );
    }
    if axes.auth_d() == Auth::Trusted && legal("AUTH", axes.auth.is_some()) {
        p.error(
            Stage::Combinations,
            Diagnostic::error(
                line,
                "TENANCY_MODE: multi with AUTH: trusted — `trusted` has no identity to isolate tenants by",
            ),
        );
    }
}
