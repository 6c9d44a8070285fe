//! Stage 2: each closed axis holds a legal value (a near miss gets a did-you-mean), and
//! `ENGINE_PLACE` is present.

use super::{Problems, Stage, View, shown};
use crate::core::deployment::MAX_SCALE;
use crate::core::deployment::{
    Auth, AutoStop, Axis, Database, Place, Size, Storage, Strategy, Tenancy,
};
use crate::core::diagnostic::Diagnostic;
use crate::core::drawer::Property;
use crate::core::names;

/// The axes as read: `None` where absent or refused.
pub(super) struct Axes {
    pub place: Option<Place>,
    pub tenancy: Option<Tenancy>,
    pub storage: Option<Storage>,
    pub database: Option<Database>,
    pub auth: Option<Auth>,
    pub size: Option<Size>,
    pub auto_stop: Option<AutoStop>,
    pub strategy: Option<Strategy>,
    /// `SCALE`, when given and legal.
    pub scale: Option<u16>,
    /// `REGIONS`, when given and legal.
    pub regions: Option<Vec<String>>,
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
    pub fn auto_stop_d(&self) -> AutoStop {
        self.auto_stop.unwrap_or(AutoStop::Stop)
    }
    pub fn scale_d(&self) -> u16 {
        self.scale.unwrap_or(1)
    }
    pub fn strategy_d(&self) -> Strategy {
        self.strategy.unwrap_or(Strategy::Rolling)
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
        size: axis(view.usable("SIZE"), p),
        auto_stop: axis(view.usable("AUTO_STOP"), p),
        strategy: axis(view.usable("STRATEGY"), p),
        scale: scale(view.usable("SCALE"), p),
        regions: regions(view, p),
    }
}

fn axis<A: Axis>(prop: Option<&Property>, p: &mut Problems) -> Option<A> {
    let prop = prop?;
    if let Some(v) = A::parse(&prop.value) {
        return Some(v);
    }
    let hint = match synonym::<A>(&prop.value).or_else(|| A::suggest(&prop.value)) {
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

/// What a boolean-minded value means on an axis that spells it out (`AUTO_STOP: false`
/// is `off`: flyctl reads `false` the same way, fly-go `MachineAutostop.UnmarshalText`).
fn synonym<A: Axis>(text: &str) -> Option<&'static str> {
    let word = text.trim().to_ascii_lowercase();
    match (A::KEY, word.as_str()) {
        ("AUTO_STOP", "false" | "no" | "never" | "none" | "0") => Some("off"),
        ("AUTO_STOP", "true" | "yes" | "1") => Some("stop"),
        _ => None,
    }
}

/// `SCALE`: a plain integer 1–100 (no sign, exponent, unit or leading zero games).
fn scale(prop: Option<&Property>, p: &mut Problems) -> Option<u16> {
    let prop = prop?;
    let digits = !prop.value.is_empty() && prop.value.chars().all(|c| c.is_ascii_digit());
    match prop.value.parse::<u16>() {
        Ok(n) if digits && (1..=MAX_SCALE).contains(&n) => Some(n),
        _ => {
            p.error(
                Stage::Enums,
                Diagnostic::error(
                    prop.line,
                    format!(
                        "SCALE must be a whole number of instances from 1 to {MAX_SCALE}, not `{}`",
                        shown(&prop.value)
                    ),
                ),
            );
            None
        }
    }
}

/// `REGIONS`: region codes (lowercase letters, digits, dashes), each once, none equal to
/// `REGION`.
fn regions(view: &View, p: &mut Problems) -> Option<Vec<String>> {
    let prop = view.usable("REGIONS")?;
    let region = view.drawer.value("REGION");
    let mut out: Vec<String> = Vec::new();
    let mut ok = true;
    for code in prop.value.split_whitespace() {
        let problem = if !names::is_slug(code) {
            Some(format!(
                "REGIONS: `{}` is not a region code ({}, e.g. `ams`)",
                shown(code),
                names::SLUG_RULE
            ))
        } else if Some(code) == region {
            Some(format!(
                "REGIONS: `{code}` is already REGION — REGIONS lists the regions beyond it"
            ))
        } else if out.iter().any(|c| c == code) {
            Some(format!("REGIONS: `{code}` is listed twice — keep one"))
        } else {
            None
        };
        match problem {
            Some(message) => {
                ok = false;
                p.error(Stage::Enums, Diagnostic::error(prop.line, message));
            }
            None => out.push(code.to_string()),
        }
    }
    ok.then_some(out)
}
