//! Stage 3: combinations that cannot coexist, judged on the values as given or
//! defaulted, only where each side is legal.

use super::enums::Axes;
use super::{Problems, Stage, View};
use crate::core::deployment::{Auth, Database, Place, Storage, Strategy, Tenancy};
use crate::core::diagnostic::Diagnostic;

pub(super) fn check(view: &View, axes: &Axes, p: &mut Problems) {
    tenancy(view, axes, p);
    scale_out(view, axes, p);
}

/// A refused value is `None` while its key is present: no combination is judged on it.
fn legal(view: &View, key: &str, parsed: bool) -> bool {
    parsed || !view.has(key)
}

fn tenancy(view: &View, axes: &Axes, p: &mut Problems) {
    let legal = |key: &str, parsed: bool| legal(view, key, parsed);
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

/// SPEC §12: N engines cannot share one SQLite file or (in the cloud) one machine's
/// disk; two machines at once cannot mount one volume.
fn scale_out(view: &View, axes: &Axes, p: &mut Problems) {
    let legal = |key: &str, parsed: bool| legal(view, key, parsed);
    let n = axes.scale_d();
    let sqlite =
        axes.database_d() == Database::Sqlite && legal("DATABASE", axes.database.is_some());
    let local_fs = axes.storage_d() == Storage::LocalFs && legal("STORAGE", axes.storage.is_some());
    if n > 1 && sqlite {
        p.error(
            Stage::Combinations,
            Diagnostic::error(
                view.line_of("SCALE"),
                format!("SCALE: {n} on DATABASE: sqlite — {n} engines cannot share one SQLite file on one volume; set DATABASE: postgres"),
            ),
        );
    }
    if n > 1 && local_fs && axes.place == Some(Place::Cloud) {
        p.error(
            Stage::Combinations,
            Diagnostic::error(
                view.line_of("SCALE"),
                format!("SCALE: {n} on STORAGE: local-fs — {n} engines cannot share one machine's disk; set STORAGE: s3"),
            ),
        );
    }
    let two_at_once = matches!(axes.strategy, Some(Strategy::BlueGreen | Strategy::Canary));
    let needs_volume = n == 1 && (sqlite || local_fs);
    if two_at_once && needs_volume {
        p.error(
            Stage::Combinations,
            Diagnostic::error(
                view.line_of("STRATEGY"),
                format!(
                    "STRATEGY: {} needs two machines at once, and a volume mounts on one — set STRATEGY: rolling, or move data to DATABASE: postgres + STORAGE: s3",
                    axes.strategy_d()
                ),
            ),
        );
    }
    if axes.regions.as_ref().is_some_and(|r| !r.is_empty()) && n == 1 {
        p.warnings.push(Diagnostic::warning(
            view.line_of("REGIONS"),
            "REGIONS without SCALE > 1 — one instance runs, in REGION only; set SCALE to spread instances",
        ));
    }
}
