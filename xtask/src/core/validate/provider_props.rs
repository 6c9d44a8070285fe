//! Provider properties the Kubernetes recipe reads (SPEC §13.1, §18 "Kubernetes"):
//! `NAMESPACE` (a DNS label), `CONTEXT` (a kubeconfig context name), `DOMAIN` (a host
//! name, no scheme or path), `INGRESS_CLASS` (a DNS subdomain). Until contract v2's
//! `# wb-properties:` header declares them per recipe, they are known keys checked here
//! and carried in `Deployment::props`; they reach the recipe as `WB_PROP_<KEY>`.
//!
//! Also here: `REGION` means nothing on Kubernetes (a warning), and is not required.

use super::{Problems, View, shown};
use crate::core::diagnostic::Diagnostic;

/// The provider properties, in the order the recipe's header names them.
pub const KEYS: &[&str] = &["NAMESPACE", "CONTEXT", "DOMAIN", "INGRESS_CLASS"];

/// The provider whose recipe reads them.
pub const PROVIDER: &str = "k8s";

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, at most 63: an RFC 1123 label (a namespace name).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A host name: dot-separated DNS labels, at most 253, at least one dot.
pub fn is_hostname(s: &str) -> bool {
    s.len() <= 253 && s.contains('.') && s.split('.').all(is_dns_label)
}

/// A DNS subdomain (an IngressClass name): labels separated by dots.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

pub(super) fn check(view: &View, provider: &str, p: &mut Problems) {
    for key in KEYS {
        let Some(prop) = view.usable(key) else {
            continue;
        };
        let v = prop.value.as_str();
        let problem = match *key {
            "NAMESPACE" if !is_dns_label(v) => Some(format!(
                "NAMESPACE `{}` is not a DNS label — lowercase letters, digits and dashes, starting and ending with a letter or digit, at most 63 characters",
                shown(v)
            )),
            "DOMAIN" if v.contains("://") || v.contains('/') => Some(format!(
                "DOMAIN `{}` must be a host name only — drop the scheme and path (e.g. `wb.example.com`); the kit serves it over https",
                shown(v)
            )),
            "DOMAIN" if !is_hostname(v) => Some(format!(
                "DOMAIN `{}` is not a host name — lowercase DNS labels separated by dots, e.g. `wb.example.com`",
                shown(v)
            )),
            "INGRESS_CLASS" if !is_dns_subdomain(v) => Some(format!(
                "INGRESS_CLASS `{}` is not an IngressClass name — lowercase letters, digits, dashes and dots",
                shown(v)
            )),
            "CONTEXT" if v.chars().any(char::is_control) => {
                Some("CONTEXT holds a control character — name a kubeconfig context".to_string())
            }
            _ => None,
        };
        if let Some(message) = problem {
            p.require(Some(prop.line), message);
        } else if provider != PROVIDER {
            p.warnings.push(Diagnostic::warning(
                prop.line,
                format!("`{key}` is read only by PROVIDER: {PROVIDER} — ignored for `{provider}`"),
            ));
        }
    }
    if provider == PROVIDER
        && let Some(prop) = view.drawer.get("REGION")
    {
        p.warnings.push(Diagnostic::warning(
            prop.line,
            format!("REGION means nothing to PROVIDER: {PROVIDER} — the cluster in your kube context decides where pods run; remove the line"),
        ));
    }
}

/// The provider properties a valid drawer sets, for `Deployment::props`.
pub(super) fn values(view: &View) -> Vec<(String, String)> {
    KEYS.iter()
        .filter_map(|k| view.drawer.value(k).map(|v| (k.to_string(), v.to_string())))
        .collect()
}
