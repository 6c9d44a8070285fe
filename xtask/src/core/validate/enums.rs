//! Stage 2: each closed axis holds a legal value (a near miss gets a did-you-mean), and
//! `ENGINE_PLACE` is present.

use super::{Problems, Stage, View, shown};
use crate::core::deployment::{Auth, Axis, Database, Place, Storage, Tenancy};
use crate::core::diagnostic::Diagnostic;
use crate::core::drawer::Property;

/// The axes as read: `None` where absent or refused.
pub(super) struct Axes {
    pub place: Option<Place>,
    pub tenancy: Option<Tenancy>,
    pub storage: Option<Storage>,
    pub database: Option<Database>,
    pub auth: Option<Auth>,
}

impl Axes {
    pub fn tenancy_d(&self) -> Tenancy {
        self.tenancy.unwrap_or(Tenancy::Single)
    }
    pub fn storage_d(&self) -> Storage {
        self.storage.unwrap_or(Storage::LocalFs)
    }
    pub fn database_d(&self) -> Database {
        self.database.unwrap_or(Database::Sqlite)
    }
    pub fn auth_d(&self) -> Auth {
        self.auth.unwrap_or(Auth::Trusted)
    }
}

pub(super) fn check(view: &View, p: &mut Problems) -> Axes {
    let place: Option<Place> = axis(view.usable("ENGINE_PLACE"), p);
    // With no drawer chosen the structure error already says why; don't add noise.
    let drawer = view.drawer;
    let chosen = drawer.drawer_line.is_some() || !drawer.properties.is_empty();
    if chosen && !view.has("ENGINE_PLACE") {
        p.error(
            Stage::Enums,
            Diagnostic::error(
                drawer.drawer_line,
                "ENGINE_PLACE is required — set `:ENGINE_PLACE: local` or `:ENGINE_PLACE: cloud`",
            ),
        );
    }
    Axes {
        place,
        tenancy: axis(view.usable("TENANCY_MODE"), p),
        storage: axis(view.usable("STORAGE"), p),
        database: axis(view.usable("DATABASE"), p),
        auth: axis(view.usable("AUTH"), p),
    }
}

fn axis<A: Axis>(prop: Option<&Property>, p: &mut Problems) -> Option<A> {
    let prop = prop?;
    if let Some(v) = A::parse(&prop.value) {
        return Some(v);
    }
    let hint = match A::suggest(&prop.value) {
        Some(s) => format!(" — did you mean `{s}`?"),
        None => String::new(),
    };
    p.error(
        Stage::Enums,
        Diagnostic::error(
            prop.line,
            format!(
                "{}: `{}` is not a legal value{hint} (legal: {})",
                A::KEY,
                shown(&prop.value),
                A::legal()
            ),
        ),
    );
    None
}
