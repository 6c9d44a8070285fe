//! The names the kit checks, each rule written once: deployment IDs, providers and
//! regions (slugs), app names, secret names. Messages quote the rule as a regex.

/// `^[a-z0-9][a-z0-9-]*$`: an ID, a provider, a region — one path component, never `.`.
pub const SLUG_RULE: &str = "^[a-z0-9][a-z0-9-]*$";
/// `^[A-Z][A-Z0-9_]*$`: a secret or environment variable name.
pub const SECRET_RULE: &str = "^[A-Z][A-Z0-9_]*$";

pub fn is_slug(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `^[a-z][a-z0-9-]{0,62}$`: a provider app name (a DNS label's worth).
pub fn is_app_name(name: &str) -> bool {
    name.len() <= 63 && name.starts_with(|c: char| c.is_ascii_lowercase()) && is_slug(name)
}

pub fn is_secret_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The deployment ID: `:ID:` when given, else the file's stem.
pub fn deployment_id<'a>(drawer_id: Option<&'a str>, file_stem: &'a str) -> &'a str {
    drawer_id.unwrap_or(file_stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_app_names_and_secret_names() {
        for ok in ["a", "0", "cloud-saas", "x1-"] {
            assert!(is_slug(ok), "{ok}");
        }
        for bad in ["", "-a", "A", "a.b", "a/b", "a_b", "é"] {
            assert!(!is_slug(bad), "{bad}");
        }
        assert!(is_app_name("wb-saas"));
        assert!(!is_app_name("1abc"));
        assert!(!is_app_name(&"a".repeat(64)));
        assert!(is_app_name(&"a".repeat(63)));
        for ok in ["A", "WB_S3_KEY", "X9"] {
            assert!(is_secret_name(ok), "{ok}");
        }
        for bad in ["", "a", "_A", "9A", "A-B", "A B"] {
            assert!(!is_secret_name(bad), "{bad}");
        }
    }
}
