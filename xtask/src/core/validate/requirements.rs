//! Stage 4: what the chosen axes require — credentials in the deploy env, an issuer for
//! token auth, an app name and region for the cloud, a recipe for the provider, a value
//! for each declared secret, https URLs, a port in range, no credentials or template
//! placeholders in the file.

use super::enums::Axes;
use super::{Context, Problems, Stage, View, shown};
use crate::core::contract::{Contract, SUPPORTABLE};
use crate::core::credentials::{Needs, Want, is_credential_key};
use crate::core::deployment::{self, Auth, Place, Storage};
use crate::core::diagnostic::Diagnostic;
use crate::core::names;
use crate::core::patterns;

/// What this stage settles for the deployment it may build.
pub(super) struct Settled {
    pub provider: String,
    pub port: Option<u16>,
    /// The provider recipe's contract, for a cloud deployment whose recipe was found.
    pub contract: Option<Contract>,
}

pub(super) fn check(view: &View, axes: &Axes, cx: &Context, p: &mut Problems) -> Settled {
    credentials(view, axes, cx, p);
    storage_and_auth(view, axes, p);
    let cloud = axes.place == Some(Place::Cloud);
    if cloud && !view.has("APP") {
        p.require(
            view.line_of("ENGINE_PLACE"),
            "ENGINE_PLACE: cloud needs APP — the provider's app name (lowercase letters, digits, dashes)",
        );
    }
    let provider_ok = names_are_legal(view, cx, p);
    let (provider, contract) = provider(view, cloud && provider_ok, cx, p);
    if let Some(contract) = &contract {
        provider_contract(view, &provider, contract, p);
    }
    secrets(view, cx, p);
    foreign_credentials(view, cx, p);
    no_credentials_in_the_file(view, cx, p);
    urls_and_image(view, p);
    let port = port(view, p);
    placeholders(view, p);
    Settled {
        provider,
        port,
        contract,
    }
}

/// What the provider's recipe declares (SPEC §18, contract v2): its required keys are
/// set, its properties hold values of their types, and no optional kit key it does not
/// support has a non-default value.
fn provider_contract(view: &View, provider: &str, contract: &Contract, p: &mut Problems) {
    if let Some(prop) = view.drawer.get("REGION")
        && !contract.requires("REGION")
    {
        p.warnings.push(Diagnostic::warning(
            prop.line,
            format!(
                "REGION means nothing to the `{provider}` recipe (its header does not require it) — it is ignored; remove the line"
            ),
        ));
    }
    for key in &contract.requires {
        if view.has(key) || key == "APP" {
            continue;
        }
        let message = if key == "REGION" {
            "ENGINE_PLACE: cloud needs REGION — the provider region to run in (e.g. `iad`)"
                .to_string()
        } else {
            format!(
                "PROVIDER: {provider} needs {key} — its recipe requires it (`# wb-requires:`); set `:{key}:` in the drawer"
            )
        };
        p.require(view.line_of("ENGINE_PLACE"), message);
    }
    for (key, ty) in &contract.properties {
        if let Some(prop) = view.usable(key)
            && !ty.accepts(&prop.value)
        {
            let hint = if ty.name() == "hostname"
                && (prop.value.contains("://") || prop.value.contains('/'))
            {
                " (drop the scheme and path, e.g. `wb.example.com`)"
            } else {
                ""
            };
            p.require(
                Some(prop.line),
                format!(
                    "{key} `{}` is not {}{hint} — a `{provider}` provider property of type {}",
                    shown(&prop.value),
                    ty.describe(),
                    ty.name()
                ),
            );
        }
    }
    for (key, default) in SUPPORTABLE {
        if let Some(prop) = view.usable(key)
            && Some(prop.value.as_str()) != *default
            && !contract.supports(key)
        {
            p.require(
                Some(prop.line),
                format!(
                    "{key}: {} — the `{provider}` recipe does not support {key} (its `# wb-supports:` line does not name it); remove the line{}",
                    shown(&prop.value),
                    default.map(|d| format!(" or set {key}: {d}")).unwrap_or_default()
                ),
            );
        }
    }
}

/// Credentials the axes need must be in the deploy env (never in the file).
fn credentials(view: &View, axes: &Axes, cx: &Context, p: &mut Problems) {
    if !cx.require_secrets {
        return;
    }
    let needs = Needs {
        place: axes.place,
        storage: axes.storage,
        database: axes.database,
    };
    let missing = |name: &str| {
        matches!(needs.want(name), Some(Want::Required(_))) && !cx.deploy_env.has(name)
    };
    if missing("WB_S3_KEY") || missing("WB_S3_SECRET") {
        p.require(
            view.line_of("STORAGE"),
            "STORAGE: s3 needs WB_S3_KEY + WB_S3_SECRET in your deploy ENV (secrets, not the file)",
        );
    }
    if missing("WB_DATABASE_URL") {
        p.require(
            view.line_of("DATABASE"),
            "DATABASE: postgres needs WB_DATABASE_URL in your deploy ENV — the DSN is a secret",
        );
    }
}

fn storage_and_auth(view: &View, axes: &Axes, p: &mut Problems) {
    if axes.storage == Some(Storage::S3) {
        let missing: Vec<&str> = ["STORAGE_ENDPOINT", "STORAGE_BUCKET"]
            .into_iter()
            .filter(|k| !view.has(k))
            .collect();
        if !missing.is_empty() {
            p.require(
                view.line_of("STORAGE"),
                format!("STORAGE: s3 needs {} in the drawer", missing.join(" and ")),
            );
        }
    }
    if let Some(a) = axes.auth
        && a != Auth::Trusted
        && !view.has("ISSUER")
    {
        p.require(
            view.line_of("AUTH"),
            format!("AUTH: {a} needs ISSUER — a token needs an issuer"),
        );
    }
}

/// APP, PROVIDER, REGION, ID (or the file stem) follow their name rules. Returns
/// whether PROVIDER is usable as a name.
fn names_are_legal(view: &View, cx: &Context, p: &mut Problems) -> bool {
    if let Some(prop) = view.usable("APP")
        && !names::is_app_name(&prop.value)
    {
        p.require(
            Some(prop.line),
            format!(
                "APP `{}` is not a legal app name — lowercase letters, digits and dashes, starting with a letter, at most 63 characters",
                shown(&prop.value)
            ),
        );
    }
    let mut provider_ok = true;
    for key in ["PROVIDER", "REGION", "ID"] {
        if let Some(prop) = view.usable(key)
            && !names::is_slug(&prop.value)
        {
            provider_ok &= key != "PROVIDER";
            p.require(
                Some(prop.line),
                format!(
                    "{key} `{}` must match {} (lowercase letters, digits, dashes)",
                    shown(&prop.value),
                    names::SLUG_RULE
                ),
            );
        }
    }
    if !view.has("ID") && !names::is_slug(cx.file_stem) {
        p.require(
            view.drawer.drawer_line,
            format!(
                "the file name `{}` is not a legal ID ({}) — set `:ID:` in the drawer",
                shown(cx.file_stem),
                names::SLUG_RULE
            ),
        );
    }
    provider_ok
}

/// The provider (default `fly`); a cloud deployment needs its recipe, whose contract
/// comes back.
fn provider(
    view: &View,
    judge: bool,
    cx: &Context,
    p: &mut Problems,
) -> (String, Option<Contract>) {
    let provider = view
        .usable("PROVIDER")
        .map(|prop| prop.value.clone())
        .unwrap_or_else(|| deployment::DEFAULT_PROVIDER.into());
    let usable = !view.has("PROVIDER") || view.usable("PROVIDER").is_some();
    if !(judge && usable) {
        return (provider, None);
    }
    match (cx.recipe_for)(&provider) {
        Ok(contract) => (provider, Some(contract)),
        Err(why) => {
            p.require(view.line_of("PROVIDER"), why);
            (provider, None)
        }
    }
}

/// Each declared secret has a value and does not shadow a name the kit sets.
fn secrets(view: &View, cx: &Context, p: &mut Problems) {
    for secret in &view.drawer.secrets {
        if crate::core::engine_env::KIT_NAMES.contains(&secret.name.as_str()) {
            p.require(
                Some(secret.line),
                format!(
                    "secret `{}` would shadow a variable the kit sets from the file — pick another name",
                    secret.name
                ),
            );
        } else if cx.require_secrets && cx.deploy_env.is_not_utf8(&secret.name) {
            p.require(
                Some(secret.line),
                format!(
                    "secret `{0}` is exported but its value is not UTF-8 — the kit passes only UTF-8 values; export it as UTF-8 text, or `{2} secrets set {0} {1}` (value on stdin)",
                    secret.name, cx.file, cx.program
                ),
            );
        } else if cx.require_secrets && !cx.deploy_env.has(&secret.name) {
            p.require(
                Some(secret.line),
                format!(
                    "secret `{0}` is declared but has no value — run `{2} secrets set {0} {1}` (value on stdin) or export {0}",
                    secret.name, cx.file, cx.program
                ),
            );
        }
    }
}

/// A declared secret under a well-known foreign credential's name, taken from the
/// caller's shell rather than the store: say so, naming it.
fn foreign_credentials(view: &View, cx: &Context, p: &mut Problems) {
    use crate::core::secret::{FOREIGN_CREDENTIALS, Source};
    for secret in &view.drawer.secrets {
        if FOREIGN_CREDENTIALS.contains(&secret.name.as_str())
            && cx.deploy_env.source(&secret.name) == Some(Source::Env)
        {
            p.warnings.push(Diagnostic::warning(
                secret.line,
                format!(
                    "secret `{0}` is a well-known credential of another tool, taken from your shell's environment — the engine and the provider will get it; if that is not meant, remove it from `#+DEPLOY_SECRETS:`, or store the value meant for the engine with `{2} secrets set {0} {1}`",
                    secret.name, cx.file, cx.program
                ),
            ));
        }
    }
}

fn no_credentials_in_the_file(view: &View, cx: &Context, p: &mut Problems) {
    for prop in &view.drawer.properties {
        let message = if is_credential_key(&prop.key) {
            format!(
                "`{0}` looks like a credential — secrets are not in this file: delete the line, then `{2} secrets set {0} {1}`",
                prop.key, cx.file, cx.program
            )
        } else if patterns::has_url_with_password(&prop.value) {
            format!(
                "`{}` holds a URL with a password — secrets are not in this file: remove the password and keep it in your deploy ENV",
                prop.key
            )
        } else {
            continue;
        };
        p.error(
            Stage::Requirements,
            Diagnostic::error(prop.line, message).sensitive(),
        );
    }
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

/// An OCI image reference: registry/name[:tag][@digest], no blanks or quotes.
fn is_image_ref(value: &str) -> bool {
    value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/:@+-".contains(c))
}

fn urls_and_image(view: &View, p: &mut Problems) {
    for key in ["ISSUER", "JWKS_URL", "STORAGE_ENDPOINT"] {
        if let Some(prop) = view.usable(key)
            && !patterns::has_url_with_password(&prop.value)
            && !is_allowed_url(&prop.value)
        {
            p.require(
                Some(prop.line),
                format!(
                    "{key} must be an absolute https:// URL (http:// only for localhost/127.0.0.1), not `{}`",
                    shown(&prop.value)
                ),
            );
        }
    }
    if let Some(prop) = view.usable("IMAGE")
        && !is_image_ref(&prop.value)
    {
        p.require(
            Some(prop.line),
            format!(
                "IMAGE `{}` is not an image reference — e.g. `ghcr.io/owner/name:tag`",
                shown(&prop.value)
            ),
        );
    }
}

fn port(view: &View, p: &mut Problems) -> Option<u16> {
    let Some(prop) = view.usable("PORT") else {
        return Some(deployment::DEFAULT_PORT);
    };
    match prop.value.parse::<u16>() {
        Ok(port) if port >= 1 => Some(port),
        _ => {
            p.require(
                Some(prop.line),
                format!(
                    "PORT must be an integer 1–65535, not `{}`",
                    shown(&prop.value)
                ),
            );
            None
        }
    }
}

fn placeholders(view: &View, p: &mut Problems) {
    for key in &view.placeholders {
        let prop = view
            .drawer
            .get(key)
            .expect("placeholder keys come from the drawer");
        let found = patterns::placeholder(&prop.value).unwrap_or("<…>");
        p.require(
            Some(prop.line),
            format!("fill in {key} — `{found}` is a template placeholder"),
        );
    }
}
