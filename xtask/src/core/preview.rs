//! Preview deployments (SPEC §14, §18): `--preview NAME` turns a deployment into its
//! preview — ID `<id>-<name>`, APP `<app>-<name>` — with the same name rules as the
//! originals, checked here with messages that say which derived name broke which rule.

use crate::core::deployment::Deployment;
use crate::core::names::{SLUG_RULE, is_app_name, is_slug};

/// The preview `name` of `d`.
pub fn derive(d: &Deployment, name: &str) -> Result<Deployment, String> {
    if !is_slug(name) {
        return Err(format!(
            "preview name `{name}` is not a slug ({SLUG_RULE}) — use lowercase letters, digits and `-`, e.g. `pr-7`"
        ));
    }
    let mut p = d.clone();
    p.id = format!("{}-{name}", d.id);
    if let Some(app) = &d.app {
        let derived = format!("{app}-{name}");
        if !is_app_name(&derived) {
            return Err(format!(
                "the preview's APP `{derived}` ({} characters) is not an app name (^[a-z][a-z0-9-]{{0,62}}$: at most 63) — use a shorter preview name",
                derived.len()
            ));
        }
        p.app = Some(derived);
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::deployment::Place;

    #[test]
    fn derived_names_follow_the_rules() {
        let mut d = Deployment::new("saas", Place::Cloud);
        d.app = Some("wb-saas".into());
        let p = derive(&d, "pr-7").unwrap();
        assert_eq!(
            (p.id.as_str(), p.app.as_deref()),
            ("saas-pr-7", Some("wb-saas-pr-7"))
        );
        assert!(
            derive(&d, "PR_7")
                .unwrap_err()
                .starts_with("preview name `PR_7` is not a slug")
        );
        let long = "x".repeat(60);
        assert!(derive(&d, &long).unwrap_err().contains("(68 characters)"));
    }
}
