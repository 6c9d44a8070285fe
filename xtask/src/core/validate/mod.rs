//! The validator: every rule of SPEC §4, all problems collected, in the stated order —
//! one file per stage: [`structure`], [`enums`], [`combinations`], [`requirements`].
//!
//! Pure: the deploy env and the set of known provider recipes come in as values.

mod combinations;
mod enums;
mod requirements;
mod structure;

use std::sync::LazyLock;

use regex::Regex;

use crate::core::contract::Contract;
use crate::core::deployment::{self, Deployment, KNOWN_KEYS};
use crate::core::diagnostic::Diagnostic;
use crate::core::drawer::{Drawer, Property};
use crate::core::secret::DeployEnv;

pub use crate::core::credentials::is_credential_key;

static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"<[^<>]+>").unwrap());
/// `scheme://user:password@` — a URL carrying a password.
static URL_WITH_PASSWORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^/@\s:]*:[^/@\s]+@").unwrap());

/// What the validator needs from outside the file, captured at the edge.
pub struct Context<'a> {
    /// The file as the user named it, for hints that name a command.
    pub file: &'a str,
    /// The file's stem: the default `ID`.
    pub file_stem: &'a str,
    /// How the kit is invoked, for hints that name a command (`cargo xtask deploy`).
    pub program: &'a str,
    pub deploy_env: &'a DeployEnv,
    /// The contract of a provider's recipe (already checked to be a plain name): `Err`
    /// says why there is none (where it was expected, which providers exist, or why its
    /// header is unusable).
    pub recipe_for: &'a dyn Fn(&str) -> Result<Contract, String>,
    /// Whether values the deploy env must hold (credentials, declared secrets) are
    /// required. `validate`, `plan` and `apply` require them; `down`, `status`, `logs`,
    /// `url`, `verify` and `secrets` do not — an unset secret must never block a teardown.
    pub require_secrets: bool,
}

/// The validator's answer: the deployment if it is valid, and every diagnostic.
#[derive(Debug, Clone)]
pub struct Checked {
    pub deployment: Option<Deployment>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    pub fn valid(&self) -> bool {
        !self.diagnostics.iter().any(Diagnostic::is_error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| !d.is_error())
    }
}

/// The order SPEC §4 reports problems in.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Structure,
    Enums,
    Combinations,
    Requirements,
}

#[derive(Default)]
struct Problems {
    errors: Vec<(Stage, Diagnostic)>,
    warnings: Vec<Diagnostic>,
}

impl Problems {
    fn error(&mut self, stage: Stage, d: Diagnostic) {
        self.errors.push((stage, d));
    }

    fn require(&mut self, line: Option<usize>, message: impl Into<String>) {
        self.error(Stage::Requirements, Diagnostic::error(line, message));
    }
}

/// The drawer as the stages read it: a key still holding a `<…>` placeholder is not
/// usable (it gets "fill in KEY" and no other check).
struct View<'a> {
    drawer: &'a Drawer,
    placeholders: Vec<&'a str>,
}

impl<'a> View<'a> {
    fn new(drawer: &'a Drawer) -> View<'a> {
        let placeholders = drawer
            .properties
            .iter()
            .filter(|p| PLACEHOLDER.is_match(&p.value))
            .map(|p| p.key.as_str())
            .collect();
        View {
            drawer,
            placeholders,
        }
    }

    fn usable(&self, key: &str) -> Option<&'a Property> {
        self.drawer
            .get(key)
            .filter(|_| !self.placeholders.contains(&key))
    }

    fn has(&self, key: &str) -> bool {
        self.drawer.get(key).is_some()
    }

    /// The line of `key`, else the drawer's own line.
    fn line_of(&self, key: &str) -> Option<usize> {
        self.drawer
            .get(key)
            .map(|prop| prop.line)
            .or(self.drawer.drawer_line)
    }
}

/// A value for messages: short values quoted as they are, long ones cut.
fn shown(value: &str) -> String {
    if value.chars().count() > 40 {
        format!("{}…", value.chars().take(40).collect::<String>())
    } else {
        value.to_string()
    }
}

/// Whether a property's value must never be shown: a credential-like key, or a URL
/// carrying a password.
pub fn looks_secret(key: &str, value: &str) -> bool {
    is_credential_key(key) || URL_WITH_PASSWORD.is_match(value)
}

pub fn check(drawer: &Drawer, cx: &Context) -> Checked {
    let mut p = Problems::default();
    let view = View::new(drawer);
    structure::check(drawer, &mut p);
    let axes = enums::check(&view, &mut p);
    combinations::check(&view, &axes, &mut p);
    let settled = requirements::check(&view, &axes, cx, &mut p);
    warn_unknown_keys(drawer, settled.contract.as_ref(), &mut p);

    p.errors.sort_by_key(|(stage, d)| (*stage, d.line));
    let mut diagnostics: Vec<Diagnostic> = p.errors.into_iter().map(|(_, d)| d).collect();
    let valid = diagnostics.is_empty();
    diagnostics.extend(p.warnings);
    let diagnostics = crate::core::diagnostic::cap_repeated(diagnostics);
    let deployment = valid.then(|| build(drawer, &axes, settled, cx));
    Checked {
        deployment,
        diagnostics,
    }
}

/// Unknown keys: warned, with a did-you-mean, never silently dropped.
fn warn_unknown_keys(drawer: &Drawer, contract: Option<&Contract>, p: &mut Problems) {
    let mut unknown = 0;
    for prop in &drawer.properties {
        let provider_key = contract.is_some_and(|c| c.property(&prop.key).is_some());
        if KNOWN_KEYS.contains(&prop.key.as_str()) || is_credential_key(&prop.key) || provider_key {
            continue;
        }
        unknown += 1;
        // Only the warnings shown get a guess (the rest are counted, SPEC §18); a
        // length far from a known key's is no typo of it.
        let guess = KNOWN_KEYS
            .iter()
            .filter(|_| unknown <= crate::core::diagnostic::SHOWN_PER_KIND)
            .filter(|k| prop.key.len().abs_diff(k.len()) <= 2.max(k.len() / 3))
            .map(|k| (strsim::damerau_levenshtein(&prop.key, k), *k))
            .filter(|(d, k)| *d <= 2.max(k.len() / 3))
            .min()
            .map(|(_, k)| format!(" — did you mean `{k}`?"))
            .unwrap_or_default();
        // Never excerpted: an unknown key may hold a credential under a name the
        // heuristic misses.
        p.warnings.push(
            Diagnostic::warning(
                prop.line,
                format!("unknown key `{}` is ignored{guess}", prop.key),
            )
            .sensitive(),
        );
    }
}

fn build(
    drawer: &Drawer,
    axes: &enums::Axes,
    settled: requirements::Settled,
    cx: &Context,
) -> Deployment {
    let value = |key: &str| drawer.value(key).map(str::to_string);
    Deployment {
        id: value("ID").unwrap_or_else(|| cx.file_stem.to_string()),
        place: axes.place.expect("a valid deployment has a place"),
        tenancy: axes.tenancy_d(),
        storage: axes.storage_d(),
        database: axes.database_d(),
        auth: axes.auth_d(),
        app: value("APP"),
        provider: settled.provider,
        region: value("REGION"),
        image: value("IMAGE").unwrap_or_else(|| deployment::DEFAULT_IMAGE.to_string()),
        port: settled.port.expect("a valid deployment has a port"),
        storage_endpoint: value("STORAGE_ENDPOINT"),
        storage_bucket: value("STORAGE_BUCKET"),
        storage_region: value("STORAGE_REGION"),
        issuer: value("ISSUER"),
        jwks_url: value("JWKS_URL"),
        profile: value("PROFILE"),
        scale: axes.scale_d(),
        regions: axes.regions.clone().unwrap_or_default(),
        size: axes.size,
        auto_stop: axes.auto_stop_d(),
        strategy: axes.strategy_d(),
        secrets: drawer.secrets.iter().map(|s| s.name.clone()).collect(),
        properties: settled
            .contract
            .iter()
            .flat_map(|c| &c.properties)
            .map(|(key, _)| (key.clone(), value(key).unwrap_or_default()))
            .collect(),
    }
}
