//! The validator: every rule of SPEC §4, all problems collected, in the stated order.
//!
//! Pure: the deploy env and the set of known provider recipes come in as values.

use std::sync::LazyLock;

use regex::Regex;

use crate::deployment::{Auth, Axis, Database, Deployment, KNOWN_KEYS, Place, Storage, Tenancy};
use crate::diagnostic::Diagnostic;
use crate::drawer::{Drawer, Property};
use crate::secrets::DeployEnv;

static NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z0-9][a-z0-9-]*$").unwrap());
static APP: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z][a-z0-9-]{0,62}$").unwrap());
/// An OCI image reference: registry/name[:tag][@digest], no blanks or quotes.
static IMAGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$").unwrap());
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
    pub deploy_env: &'a DeployEnv,
    /// Whether a recipe exists for a provider name (already checked to be a plain name).
    pub has_recipe: &'a dyn Fn(&str) -> bool,
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

struct Problems {
    errors: Vec<(Stage, Diagnostic)>,
    warnings: Vec<Diagnostic>,
}

impl Problems {
    fn error(&mut self, stage: Stage, d: Diagnostic) {
        self.errors.push((stage, d));
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

fn is_credential_key(key: &str) -> bool {
    key == "WB_DATABASE_URL"
        || ["KEY", "SECRET", "TOKEN", "PASSWORD"]
            .iter()
            .any(|s| key == *s || key.ends_with(&format!("_{s}")))
}

/// Whether a property's value must never be shown: a credential-like key, or a URL
/// carrying a password.
pub fn looks_secret(key: &str, value: &str) -> bool {
    is_credential_key(key) || URL_WITH_PASSWORD.is_match(value)
}

/// An absolute `https://` URL, or `http://` to localhost / 127.0.0.1.
fn is_allowed_url(value: &str) -> bool {
    let host_of = |rest: &str| -> String {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or("");
        host.split(':').next().unwrap_or("").to_ascii_lowercase()
    };
    if let Some(rest) = value.strip_prefix("https://") {
        let host = host_of(rest);
        return !host.is_empty() && !value.contains(char::is_whitespace);
    }
    if let Some(rest) = value.strip_prefix("http://") {
        return matches!(host_of(rest).as_str(), "localhost" | "127.0.0.1");
    }
    false
}

pub fn check(drawer: &Drawer, cx: &Context) -> Checked {
    let mut p = Problems {
        errors: Vec::new(),
        warnings: Vec::new(),
    };

    // 1. Structure (the reader's findings).
    for d in &drawer.diagnostics {
        if d.is_error() {
            p.error(Stage::Structure, d.clone());
        } else {
            p.warnings.push(d.clone());
        }
    }

    let anchor = drawer.drawer_line;
    let line_of = |key: &str| drawer.get(key).map(|prop| prop.line).or(anchor);

    // Placeholders first: a key still holding `<…>` gets "fill in KEY" and no other check.
    let mut placeholder_keys: Vec<&str> = Vec::new();
    for prop in &drawer.properties {
        if PLACEHOLDER.is_match(&prop.value) {
            placeholder_keys.push(&prop.key);
        }
    }
    let usable = |key: &str| -> Option<&Property> {
        drawer.get(key).filter(|_| !placeholder_keys.contains(&key))
    };

    // 2. Enum legality, and ENGINE_PLACE present.
    fn axis<A: Axis>(prop: Option<&Property>, p: &mut Problems) -> Option<A> {
        let prop = prop?;
        match A::parse(&prop.value) {
            Some(v) => Some(v),
            None => {
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
        }
    }
    let place: Option<Place> = axis(usable("ENGINE_PLACE"), &mut p);
    // With no drawer chosen the structure error already says why; don't add noise.
    let chosen = drawer.drawer_line.is_some() || !drawer.properties.is_empty();
    if chosen && drawer.get("ENGINE_PLACE").is_none() {
        p.error(
            Stage::Enums,
            Diagnostic::error(
                anchor,
                "ENGINE_PLACE is required — set `:ENGINE_PLACE: local` or `:ENGINE_PLACE: cloud`",
            ),
        );
    }
    let tenancy: Option<Tenancy> = axis(usable("TENANCY_MODE"), &mut p);
    let storage: Option<Storage> = axis(usable("STORAGE"), &mut p);
    let database: Option<Database> = axis(usable("DATABASE"), &mut p);
    let auth: Option<Auth> = axis(usable("AUTH"), &mut p);
    let tenancy_d = tenancy.unwrap_or(Tenancy::Single);
    let storage_d = storage.unwrap_or(Storage::LocalFs);
    let database_d = database.unwrap_or(Database::Sqlite);
    let auth_d = auth.unwrap_or(Auth::Trusted);

    // 3. Combinations that cannot coexist (judged on the values as given or defaulted,
    //    only where each side is legal).
    let tenancy_ok = tenancy.is_some() || drawer.get("TENANCY_MODE").is_none();
    if tenancy_ok && tenancy_d == Tenancy::Multi {
        let line = line_of("TENANCY_MODE");
        if database_d == Database::Sqlite
            && (database.is_some() || drawer.get("DATABASE").is_none())
        {
            p.error(
                Stage::Combinations,
                Diagnostic::error(
                    line,
                    "TENANCY_MODE: multi on DATABASE: sqlite serializes every tenant through one writer — set DATABASE: postgres",
                ),
            );
        }
        if auth_d == Auth::Trusted && (auth.is_some() || drawer.get("AUTH").is_none()) {
            p.error(
                Stage::Combinations,
                Diagnostic::error(
                    line,
                    "TENANCY_MODE: multi with AUTH: trusted — `trusted` has no identity to isolate tenants by",
                ),
            );
        }
    }

    // 4. What the chosen axes require.
    let req = |p: &mut Problems, line: Option<usize>, message: String| {
        p.error(Stage::Requirements, Diagnostic::error(line, message))
    };
    let env = cx.deploy_env;
    if storage == Some(Storage::S3) {
        if cx.require_secrets && (!env.has("WB_S3_KEY") || !env.has("WB_S3_SECRET")) {
            req(&mut p, line_of("STORAGE"), "STORAGE: s3 needs WB_S3_KEY + WB_S3_SECRET in your deploy ENV (secrets, not the file)".into());
        }
        let missing: Vec<&str> = ["STORAGE_ENDPOINT", "STORAGE_BUCKET"]
            .into_iter()
            .filter(|k| drawer.get(k).is_none())
            .collect();
        if !missing.is_empty() {
            req(
                &mut p,
                line_of("STORAGE"),
                format!("STORAGE: s3 needs {} in the drawer", missing.join(" and ")),
            );
        }
    }
    if cx.require_secrets && database == Some(Database::Postgres) && !env.has("WB_DATABASE_URL") {
        req(
            &mut p,
            line_of("DATABASE"),
            "DATABASE: postgres needs WB_DATABASE_URL in your deploy ENV — the DSN is a secret"
                .into(),
        );
    }
    if let Some(a) = auth
        && a != Auth::Trusted
        && drawer.get("ISSUER").is_none()
    {
        req(
            &mut p,
            line_of("AUTH"),
            format!("AUTH: {a} needs ISSUER — a token needs an issuer"),
        );
    }
    let cloud = place == Some(Place::Cloud);
    if cloud && drawer.get("APP").is_none() {
        req(
            &mut p,
            line_of("ENGINE_PLACE"),
            "ENGINE_PLACE: cloud needs APP — the provider's app name (lowercase letters, digits, dashes)".into(),
        );
    }
    if let Some(prop) = usable("APP")
        && !APP.is_match(&prop.value)
    {
        req(
            &mut p,
            Some(prop.line),
            format!(
                "APP `{}` is not a legal app name — lowercase letters, digits and dashes, starting with a letter, at most 63 characters",
                shown(&prop.value)
            ),
        );
    }
    let mut provider_ok = true;
    for key in ["PROVIDER", "REGION", "ID"] {
        if let Some(prop) = usable(key)
            && !NAME.is_match(&prop.value)
        {
            if key == "PROVIDER" {
                provider_ok = false;
            }
            req(
                &mut p,
                Some(prop.line),
                format!(
                    "{key} `{}` must match ^[a-z0-9][a-z0-9-]*$ (lowercase letters, digits, dashes)",
                    shown(&prop.value)
                ),
            );
        }
    }
    if drawer.get("ID").is_none() && !NAME.is_match(cx.file_stem) {
        req(
            &mut p,
            anchor,
            format!(
                "the file name `{}` is not a legal ID (^[a-z0-9][a-z0-9-]*$) — set `:ID:` in the drawer",
                shown(cx.file_stem)
            ),
        );
    }
    let provider = usable("PROVIDER")
        .map(|prop| prop.value.clone())
        .unwrap_or_else(|| crate::deployment::DEFAULT_PROVIDER.into());
    if cloud
        && provider_ok
        && drawer
            .get("PROVIDER")
            .is_none_or(|_| usable("PROVIDER").is_some())
        && !(cx.has_recipe)(&provider)
    {
        req(
            &mut p,
            line_of("PROVIDER"),
            format!(
                "no provider recipe for `{provider}` — expected providers/{provider}/bootstrap.sh (WB_PROVIDERS_DIR, repo, or bundled)"
            ),
        );
    }
    for secret in &drawer.secrets {
        if crate::engine_env::KIT_NAMES.contains(&secret.name.as_str()) {
            req(
                &mut p,
                Some(secret.line),
                format!(
                    "secret `{}` would shadow a variable the kit sets from the file — pick another name",
                    secret.name
                ),
            );
        } else if cx.require_secrets && !env.has(&secret.name) {
            req(
                &mut p,
                Some(secret.line),
                format!(
                    "secret `{0}` is declared but has no value — run `cargo xtask deploy secrets set {0} {1}` (value on stdin) or export {0}",
                    secret.name, cx.file
                ),
            );
        }
    }
    for prop in &drawer.properties {
        if is_credential_key(&prop.key) {
            p.error(
                Stage::Requirements,
                Diagnostic::error(
                    prop.line,
                    format!(
                        "`{0}` looks like a credential — secrets are not in this file: delete the line, then `cargo xtask deploy secrets set {0} {1}`",
                        prop.key, cx.file
                    ),
                )
                .sensitive(),
            );
        } else if URL_WITH_PASSWORD.is_match(&prop.value) {
            p.error(
                Stage::Requirements,
                Diagnostic::error(
                    prop.line,
                    format!(
                        "`{}` holds a URL with a password — secrets are not in this file: remove the password and keep it in your deploy ENV",
                        prop.key
                    ),
                )
                .sensitive(),
            );
        }
    }
    for key in ["ISSUER", "JWKS_URL", "STORAGE_ENDPOINT"] {
        if let Some(prop) = usable(key)
            && !URL_WITH_PASSWORD.is_match(&prop.value)
            && !is_allowed_url(&prop.value)
        {
            req(
                &mut p,
                Some(prop.line),
                format!(
                    "{key} must be an absolute https:// URL (http:// only for localhost/127.0.0.1), not `{}`",
                    shown(&prop.value)
                ),
            );
        }
    }
    if let Some(prop) = usable("IMAGE")
        && !IMAGE.is_match(&prop.value)
    {
        req(
            &mut p,
            Some(prop.line),
            format!(
                "IMAGE `{}` is not an image reference — e.g. `ghcr.io/owner/name:tag`",
                shown(&prop.value)
            ),
        );
    }
    let port = match usable("PORT") {
        None => Some(crate::deployment::DEFAULT_PORT),
        Some(prop) => match prop.value.parse::<u16>() {
            Ok(port) if port >= 1 => Some(port),
            _ => {
                req(
                    &mut p,
                    Some(prop.line),
                    format!(
                        "PORT must be an integer 1–65535, not `{}`",
                        shown(&prop.value)
                    ),
                );
                None
            }
        },
    };
    if cloud && drawer.get("REGION").is_none() {
        req(
            &mut p,
            line_of("ENGINE_PLACE"),
            "ENGINE_PLACE: cloud needs REGION — the provider region to run in (e.g. `iad`)".into(),
        );
    }
    for key in &placeholder_keys {
        let prop = drawer
            .get(key)
            .expect("placeholder keys come from the drawer");
        let found = PLACEHOLDER
            .find(&prop.value)
            .map(|m| m.as_str())
            .unwrap_or("<…>");
        req(
            &mut p,
            Some(prop.line),
            format!("fill in {key} — `{found}` is a template placeholder"),
        );
    }

    // Unknown keys: warned, with a did-you-mean, never silently dropped.
    for prop in &drawer.properties {
        if KNOWN_KEYS.contains(&prop.key.as_str()) || is_credential_key(&prop.key) {
            continue;
        }
        let guess = KNOWN_KEYS
            .iter()
            .map(|k| (strsim::damerau_levenshtein(&prop.key, k), *k))
            .filter(|(d, k)| *d <= 2.max(k.len() / 3))
            .min()
            .map(|(_, k)| format!(" — did you mean `{k}`?"))
            .unwrap_or_default();
        p.warnings.push(Diagnostic::warning(
            prop.line,
            format!("unknown key `{}` is ignored{guess}", prop.key),
        ));
    }

    p.errors.sort_by_key(|(stage, d)| (*stage, d.line));
    let mut diagnostics: Vec<Diagnostic> = p.errors.into_iter().map(|(_, d)| d).collect();
    let valid = diagnostics.is_empty();
    diagnostics.extend(p.warnings);

    let deployment = valid.then(|| {
        let value = |key: &str| drawer.value(key).map(str::to_string);
        Deployment {
            id: value("ID").unwrap_or_else(|| cx.file_stem.to_string()),
            place: place.expect("a valid deployment has a place"),
            tenancy: tenancy_d,
            storage: storage_d,
            database: database_d,
            auth: auth_d,
            app: value("APP"),
            provider,
            region: value("REGION"),
            image: value("IMAGE").unwrap_or_else(|| crate::deployment::DEFAULT_IMAGE.to_string()),
            port: port.expect("a valid deployment has a port"),
            storage_endpoint: value("STORAGE_ENDPOINT"),
            storage_bucket: value("STORAGE_BUCKET"),
            storage_region: value("STORAGE_REGION"),
            issuer: value("ISSUER"),
            jwks_url: value("JWKS_URL"),
            profile: value("PROFILE"),
            secrets: drawer.secrets.iter().map(|s| s.name.clone()).collect(),
        }
    });
    Checked {
        deployment,
        diagnostics,
    }
}
