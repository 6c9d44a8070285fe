//! The few line and value shapes the reader and the validator look for, written out by
//! hand instead of compiled regexes: each is a handful of comparisons, and the kit then
//! starts without compiling any pattern (SPEC §16: `validate` close to `cat`). Each
//! function names the regex it implements; `tests/tests/patterns.rs` checks them against
//! the `regex` crate on generated input.

/// `^:[^\s:]+:` — a line that *looks* like a property: the `:KEY:` part, when there.
pub fn looks_like_property(line: &str) -> Option<&str> {
    let rest = line.strip_prefix(':')?;
    let end = rest.find(|c: char| c == ':' || c.is_whitespace())?;
    (end > 0 && rest[end..].starts_with(':')).then(|| &line[..end + 2])
}

/// `^:[A-Za-z][A-Za-z0-9_-]*:$` — another drawer's opening line (`:LOGBOOK:`).
pub fn is_other_drawer(line: &str) -> bool {
    let Some(name) = line.strip_prefix(':').and_then(|r| r.strip_suffix(':')) else {
        return false;
    };
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `^\*+\s` — an Org headline.
pub fn is_headline(line: &str) -> bool {
    let rest = line.trim_start_matches('*');
    rest.len() < line.len() && rest.starts_with(char::is_whitespace)
}

/// `<[^<>]+>` — the leftmost template placeholder in a value.
pub fn placeholder(value: &str) -> Option<&str> {
    for (open, _) in value.match_indices('<') {
        let after = &value[open + 1..];
        if let Some(close) = after.find(['<', '>'])
            && close > 0
            && after.as_bytes()[close] == b'>'
        {
            return Some(&value[open..open + close + 2]);
        }
    }
    None
}

/// `[a-zA-Z][a-zA-Z0-9+.-]*://[^/@\s:]*:[^/@\s]+@` — a URL carrying a password,
/// anywhere in a value.
pub fn has_url_with_password(value: &str) -> bool {
    let is_scheme = |c: char| c.is_ascii_alphanumeric() || "+.-".contains(c);
    let stops = |c: char| c == '/' || c == '@' || c.is_whitespace();
    let mut from = 0;
    while let Some(at) = value[from..].find("://").map(|i| from + i) {
        from = at + 3;
        let scheme_run = value[..at]
            .chars()
            .rev()
            .take_while(|c| is_scheme(*c))
            .collect::<Vec<_>>();
        if !scheme_run.iter().any(char::is_ascii_alphabetic) {
            continue;
        }
        let after = &value[at + 3..];
        let user_end = after
            .find(|c: char| stops(c) || c == ':')
            .unwrap_or(after.len());
        let Some(rest) = after[user_end..].strip_prefix(':') else {
            continue;
        };
        let pass_end = rest.find(stops).unwrap_or(rest.len());
        if pass_end > 0 && rest[pass_end..].starts_with('@') {
            return true;
        }
    }
    false
}
