//! What a provider recipe declares about deployments that use it (recipe contract v2,
//! SPEC §13.1, §18): its provider properties with their types, the keys it requires, the
//! optional kit keys it supports. Read from the recipe's header at the edge; the
//! validator judges a drawer against it as a value.

use crate::core::names;

/// The closed set of provider property types (SPEC §18).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropType {
    String,
    DnsLabel,
    Hostname,
    SshTarget,
    Port,
    HttpsUrl,
    Path,
}

impl PropType {
    pub const ALL: &'static [PropType] = &[
        PropType::String,
        PropType::DnsLabel,
        PropType::Hostname,
        PropType::SshTarget,
        PropType::Port,
        PropType::HttpsUrl,
        PropType::Path,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PropType::String => "string",
            PropType::DnsLabel => "dns-label",
            PropType::Hostname => "hostname",
            PropType::SshTarget => "ssh-target",
            PropType::Port => "port",
            PropType::HttpsUrl => "https-url",
            PropType::Path => "path",
        }
    }

    pub fn parse(word: &str) -> Option<PropType> {
        PropType::ALL.iter().copied().find(|t| t.name() == word)
    }

    /// What a value of this type looks like, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            PropType::String => "one line of text",
            PropType::DnsLabel => {
                "a DNS label (lowercase letters, digits and dashes, at most 63 characters)"
            }
            PropType::Hostname => "a host name (DNS labels joined by dots)",
            PropType::SshTarget => "an ssh target `user@host[:port]`",
            PropType::Port => "a port 1–65535, optionally `addr:port`",
            PropType::HttpsUrl => "an absolute https:// URL",
            PropType::Path => "a path (no blanks, no control characters)",
        }
    }

    /// Whether `value` is a value of this type.
    pub fn accepts(self, value: &str) -> bool {
        if value.is_empty() || value.chars().any(char::is_control) {
            return false;
        }
        match self {
            PropType::String => true,
            PropType::DnsLabel => is_dns_label(value),
            PropType::Hostname => is_hostname(value),
            PropType::SshTarget => is_ssh_target(value),
            PropType::Port => is_publish(value),
            PropType::HttpsUrl => value
                .strip_prefix("https://")
                .is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace)),
            PropType::Path => !value.contains(char::is_whitespace),
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_hostname(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    s.len() <= 253 && lower.split('.').all(is_dns_label)
}

fn is_port(s: &str) -> bool {
    s.parse::<u16>().is_ok_and(|p| p >= 1) && !s.starts_with('0')
}

/// `port` or `addr:port` (an IPv4 address or host name on the left).
fn is_publish(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((addr, port)) => is_port(port) && is_hostname(addr),
        None => is_port(s),
    }
}

/// `user@host[:port]`.
pub fn is_ssh_target(s: &str) -> bool {
    let Some((user, rest)) = s.split_once('@') else {
        return false;
    };
    let user_ok = !user.is_empty()
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !user.starts_with('-');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    user_ok && is_hostname(host) && port.is_none_or(is_port)
}

/// The optional kit keys of SPEC §12 a recipe may support, with their default values
/// (a default is always fine, whatever the recipe supports). The keys themselves are
/// validated where the kit knows them; this table says only what "non-default" means.
pub const SUPPORTABLE: &[(&str, Option<&str>)] = &[
    ("SCALE", Some("1")),
    ("REGIONS", None),
    ("SIZE", None),
    ("AUTO_STOP", Some("stop")),
    ("STRATEGY", Some("rolling")),
];

/// A recipe's declarations about the deployments that use it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contract {
    /// `# wb-properties:` — provider keys, each with its type, in order.
    pub properties: Vec<(String, PropType)>,
    /// `# wb-requires:` — kit keys and provider keys that must be set.
    pub requires: Vec<String>,
    /// `# wb-supports:` — the optional kit keys it honours.
    pub supports: Vec<String>,
}

impl Contract {
    pub fn property(&self, key: &str) -> Option<PropType> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, t)| *t)
    }

    pub fn requires(&self, key: &str) -> bool {
        self.requires.iter().any(|k| k == key)
    }

    pub fn supports(&self, key: &str) -> bool {
        self.supports.iter().any(|k| k == key)
    }
}

/// Whether `name` may be a provider property: an upper-case drawer key whose
/// `WB_PROP_<KEY>` is a variable name, and not a key the kit itself reads.
pub fn property_name_problem(name: &str) -> Option<String> {
    let shaped = name.starts_with(|c: char| c.is_ascii_uppercase())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && names::is_secret_name(&format!("WB_PROP_{name}"));
    if !shaped {
        return Some(format!(
            "`{name}` is not a valid property key — upper-case letters, digits and `_`, starting with a letter (it reaches the recipe as WB_PROP_{name})"
        ));
    }
    if crate::core::deployment::KNOWN_KEYS.contains(&name)
        || SUPPORTABLE.iter().any(|(k, _)| *k == name)
    {
        return Some(format!(
            "`{name}` is a key the kit itself reads — a provider property needs a name of its own"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_accept_what_they_say() {
        assert!(PropType::SshTarget.accepts("deploy@example.com"));
        assert!(PropType::SshTarget.accepts("root@127.0.0.1:2222"));
        for bad in [
            "example.com",
            "@h",
            "u@",
            "u@h:0",
            "u@h:99999",
            "u@h p",
            "-u@h",
        ] {
            assert!(!PropType::SshTarget.accepts(bad), "{bad}");
        }
        assert!(PropType::Port.accepts("4000"));
        assert!(PropType::Port.accepts("127.0.0.1:8080"));
        assert!(!PropType::Port.accepts("0"));
        assert!(!PropType::Port.accepts("http"));
        assert!(PropType::DnsLabel.accepts("wb-prod"));
        assert!(!PropType::DnsLabel.accepts("Wb"));
        assert!(PropType::Hostname.accepts("app.example.com"));
        assert!(!PropType::Hostname.accepts("app..com"));
        assert!(PropType::HttpsUrl.accepts("https://x.example"));
        assert!(!PropType::HttpsUrl.accepts("http://x.example"));
        assert!(!PropType::String.accepts("a\nb"));
    }

    #[test]
    fn property_names() {
        assert!(property_name_problem("HOST").is_none());
        assert!(property_name_problem("host").is_some());
        assert!(property_name_problem("APP").is_some());
        assert!(property_name_problem("SCALE").is_some());
        assert!(property_name_problem("9X").is_some());
    }
}
