//! The inert reader: `deployment.org` text → the drawer's keys, values and line numbers.
//!
//! Nothing here interpolates, includes or executes. The reader keeps going after a
//! problem so that one run reports every problem in the file. See SPEC §3.1.

use std::sync::LazyLock;

use regex::Regex;

use crate::core::diagnostic::Diagnostic;

/// A line that *looks* like a property (`:SOMETHING:` first): if it fails [`property`],
/// it gets a warning rather than silence.
static LOOKS_LIKE_PROPERTY: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^:[^\s:]+:").unwrap());
/// Any other drawer's opening line (`:LOGBOOK:`), whose body is ignored up to `:END:`.
static OTHER_DRAWER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^:[A-Za-z][A-Za-z0-9_-]*:$").unwrap());
static HEADLINE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\*+\s").unwrap());

// The three line shapes below are read by hand rather than by regex captures: on a
// 1 MiB file of them, captures cost most of the time (issue #14 item 6).

/// The one shape a drawer line must have to be a property (SPEC §3.1):
/// `^:([A-Za-z_]+):\s+(.*\S)\s*$` → (key, value).
fn property(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix(':')?;
    let (key, rest) = letters_and_underscores(rest)?;
    let rest = rest.strip_prefix(':')?;
    if !rest.starts_with(char::is_whitespace) || rest.trim().is_empty() {
        return None;
    }
    Some((key, rest.trim()))
}

/// The older keyword dialect, `#+DEPLOY_<KEY>: value` (Org keywords are
/// case-insensitive): `^(?i:#\+DEPLOY_)([A-Za-z_]+):(.*)$` → (key, value).
fn keyword(line: &str) -> Option<(&str, &str)> {
    let rest = strip_prefix_ignore_case(line, "#+DEPLOY_")?;
    let (key, rest) = letters_and_underscores(rest)?;
    Some((key, rest.strip_prefix(':')?))
}

/// `#+BEGIN_SRC` … `#+END_SRC` (any block kind): its body is content, never
/// structure. `^(?i:#\+BEGIN_)(\S+)` → the kind.
fn block_begin(line: &str) -> Option<&str> {
    let rest = strip_prefix_ignore_case(line, "#+BEGIN_")?;
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// A non-empty run of `[A-Za-z_]` at the start, and what follows it.
fn letters_and_underscores(text: &str) -> Option<(&str, &str)> {
    let end = text
        .find(|c: char| !(c.is_ascii_alphabetic() || c == '_'))
        .unwrap_or(text.len());
    (end > 0).then(|| text.split_at(end))
}

/// One `:KEY: value` as read, with the line it stands on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub key: String,
    pub value: String,
    pub line: usize,
    /// Read from the older `#+DEPLOY_<KEY>:` form rather than the drawer.
    pub from_keyword: bool,
}

/// One name declared in `#+DEPLOY_SECRETS:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretDecl {
    pub name: String,
    pub line: usize,
}

/// What the reader found: the chosen drawer's properties (first occurrence of each key),
/// the declared secret names, and every structural problem and warning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drawer {
    pub properties: Vec<Property>,
    pub secrets: Vec<SecretDecl>,
    pub diagnostics: Vec<Diagnostic>,
    /// Line of the chosen drawer's `:PROPERTIES:`.
    pub drawer_line: Option<usize>,
    /// Line of the `:END:` closing the chosen drawer.
    pub end_line: Option<usize>,
}

impl Drawer {
    pub fn get(&self, key: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.key == key)
    }

    pub fn value(&self, key: &str) -> Option<&str> {
        self.get(key).map(|p| p.value.as_str())
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// The keyword dialect's names that differ from the drawer's.
fn keyword_key(name: &str) -> String {
    match name.to_ascii_uppercase().as_str() {
        "PLACE" => "ENGINE_PLACE".to_string(),
        "TENANCY" => "TENANCY_MODE".to_string(),
        other => other.to_string(),
    }
}

struct RawDrawer {
    open_line: usize,
    end_line: Option<usize>,
    properties: Vec<Property>,
}

/// The reader's position in the file.
#[derive(Default)]
struct Reader {
    out: Drawer,
    drawers: Vec<RawDrawer>,
    keywords: Vec<Property>,
    /// Inside a property drawer: its index in `drawers`.
    in_properties: Option<usize>,
    /// Inside another drawer (`:LOGBOOK:`): the line it opened on.
    in_other: Option<usize>,
    /// Inside a `#+BEGIN_<kind>` block: the `#+END_<kind>` line that closes it,
    /// uppercased, and the line it opened on.
    in_block: Option<(String, usize)>,
    /// A `:PROPERTIES:` line read inside another drawer: (that drawer's line, its line).
    swallowed: Option<(usize, usize)>,
    /// The declared secret names so far (indexed: 90k names stay linear).
    secret_names: std::collections::HashSet<String>,
}

/// Reads a deployment file's text. `pick_id` selects one drawer when the file holds
/// several under headlines with distinct `:ID:`s (`--id`).
pub fn read(text: &str, pick_id: Option<&str>) -> Drawer {
    let text = strip_boms(text);
    let mut r = Reader::default();
    for (index, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        r.line(index + 1, line);
    }
    r.finish(pick_id)
}

/// The text without its leading byte-order marks: one, or several (an editor that
/// added one to a file that had one). The reader and `fmt` agree on this.
pub fn strip_boms(text: &str) -> &str {
    text.trim_start_matches('\u{feff}')
}

impl Reader {
    fn line(&mut self, n: usize, line: &str) {
        let trimmed = line.trim();
        if let Some(open) = self.in_properties
            && self.inside_properties(open, n, line, trimmed)
        {
            return;
        }
        if let Some((end, _)) = &self.in_block {
            if trimmed.to_ascii_uppercase() == *end {
                self.in_block = None;
            }
            return;
        }
        if let Some(other) = self.in_other {
            if trimmed == ":END:" {
                self.in_other = None;
            } else if trimmed == ":PROPERTIES:" && self.swallowed.is_none() {
                self.swallowed = Some((other, n));
            }
            return;
        }
        if let Some(kind) = block_begin(trimmed) {
            self.in_block = Some((format!("#+END_{}", kind.to_ascii_uppercase()), n));
        } else if trimmed == ":PROPERTIES:" {
            self.drawers.push(RawDrawer {
                open_line: n,
                end_line: None,
                properties: Vec::new(),
            });
            self.in_properties = Some(self.drawers.len() - 1);
        } else if trimmed != ":END:" && OTHER_DRAWER.is_match(trimmed) {
            self.in_other = Some(n);
        } else if let Some((key, value)) = keyword(line.trim_start()) {
            read_keyword(
                key,
                value.trim(),
                n,
                &mut self.keywords,
                &mut self.out,
                &mut self.secret_names,
            );
        }
    }

    /// A line inside a property drawer; `false` when a headline ended the drawer and
    /// the line is to be read as usual.
    fn inside_properties(&mut self, open: usize, n: usize, line: &str, trimmed: &str) -> bool {
        if trimmed == ":END:" {
            self.drawers[open].end_line = Some(n);
            self.in_properties = None;
            return true;
        }
        let opened = self.drawers[open].open_line;
        if HEADLINE.is_match(line) {
            self.out.diagnostics.push(Diagnostic::error(
                opened,
                format!("the drawer opened here is not closed before the headline at line {n} — add `:END:`"),
            ));
            self.in_properties = None;
            return false;
        }
        if trimmed == ":PROPERTIES:" {
            self.out.diagnostics.push(Diagnostic::error(
                n,
                format!("`:PROPERTIES:` inside the drawer opened at line {opened} — close that one with `:END:` first"),
            ));
            return true;
        }
        read_drawer_line(
            line.trim_start(),
            n,
            &mut self.drawers[open].properties,
            &mut self.out.diagnostics,
        );
        true
    }

    fn finish(mut self, pick_id: Option<&str>) -> Drawer {
        let out = &mut self.out;
        if let Some(open) = self.in_properties {
            out.diagnostics.push(Diagnostic::error(
                self.drawers[open].open_line,
                "unterminated drawer: `:PROPERTIES:` opened here has no `:END:` before the end of the file — add `:END:`",
            ));
        }
        if self.drawers.is_empty() && self.keywords.is_empty() && pick_id.is_none() {
            out.diagnostics.push(no_drawer(
                self.in_block.as_ref(),
                self.in_other,
                self.swallowed,
            ));
        }
        let chosen = choose(self.drawers, pick_id, &mut out.diagnostics);
        let mut properties = Vec::new();
        if let Some(drawer) = chosen {
            out.drawer_line = Some(drawer.open_line);
            out.end_line = drawer.end_line;
            properties = drawer.properties;
        }
        properties.extend(self.keywords);
        // Each key once: the first wins, a repeat is an error (indexed, so a huge file
        // stays linear).
        let mut first: std::collections::HashMap<String, usize> = Default::default();
        for property in properties {
            match first.get(&property.key) {
                Some(line) => out.diagnostics.push(Diagnostic::error(
                    property.line,
                    format!(
                        "`{}` is given twice (lines {line} and {}) — keep one",
                        property.key, property.line
                    ),
                )),
                None => {
                    first.insert(property.key.clone(), property.line);
                    out.properties.push(property);
                }
            }
        }
        self.out
    }
}

/// Why no drawer was found: none at all, or a block or drawer that never closed and
/// swallowed the rest of the file.
fn no_drawer(
    block: Option<&(String, usize)>,
    other: Option<usize>,
    inside: Option<(usize, usize)>,
) -> Diagnostic {
    let swallowed = match (block, other) {
        (None, None) if let Some((open, at)) = inside => format!(
            " — the drawer opened at line {open} has no `:END:` of its own, so the `:PROPERTIES:` at line {at} is read as part of it; close line {open}'s drawer with `:END:`"
        ),
        (Some((end, line)), _) => format!(
            " — the block opened at line {line} is never closed (no `{end}`), so the rest of the file is inside it"
        ),
        (None, Some(line)) => format!(
            " — the drawer opened at line {line} is never closed (no `:END:`), so the rest of the file is inside it"
        ),
        (None, None) => String::new(),
    };
    Diagnostic::error(
        None,
        format!(
            "no `:PROPERTIES:` drawer{swallowed} — a deployment is an Org headline with a property drawer; `cargo xtask deploy init local` writes a starter"
        ),
    )
}

fn read_drawer_line(
    line: &str,
    n: usize,
    properties: &mut Vec<Property>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    if let Some((key, value)) = property(line) {
        properties.push(Property {
            key: key.to_ascii_uppercase(),
            value: value.to_string(),
            line: n,
            from_keyword: false,
        });
    } else if let Some(m) = LOOKS_LIKE_PROPERTY.find(line) {
        let key = m.as_str().trim_matches(':');
        let message = if line[m.end()..].trim().is_empty() {
            format!("`{key}` has no value — the line is ignored; give it a value or remove it")
        } else {
            format!(
                "`:{key}:` is not a property this reader accepts (keys are letters and underscores) — the line is ignored; \
                 if it holds a secret, remove it from the file and use `cargo xtask deploy secrets set`"
            )
        };
        diagnostics.push(Diagnostic::warning(n, message).sensitive());
    }
}

fn read_keyword(
    name: &str,
    value: &str,
    n: usize,
    keywords: &mut Vec<Property>,
    out: &mut Drawer,
    seen: &mut std::collections::HashSet<String>,
) {
    let upper = name.to_ascii_uppercase();
    if upper == "SECRETS" {
        for secret in value.split_whitespace() {
            if !crate::core::names::is_secret_name(secret) {
                out.diagnostics.push(Diagnostic::error(
                    n,
                    format!("secret name `{secret}` must match ^[A-Z][A-Z0-9_]*$ (uppercase letters, digits, underscores)"),
                ));
            } else if !seen.insert(secret.to_string()) {
                out.diagnostics.push(Diagnostic::warning(
                    n,
                    format!("secret `{secret}` is declared twice"),
                ));
            } else {
                out.secrets.push(SecretDecl {
                    name: secret.to_string(),
                    line: n,
                });
            }
        }
        return;
    }
    let key = keyword_key(&upper);
    if value.is_empty() {
        out.diagnostics.push(Diagnostic::warning(
            n,
            format!("`#+DEPLOY_{upper}:` has no value — the line is ignored; give it a value or remove it"),
        ));
        return;
    }
    out.diagnostics.push(Diagnostic::warning(
        n,
        format!(
            "`#+DEPLOY_{upper}:` is the older keyword form; the drawer is canonical — \
             `cargo xtask deploy fmt --migrate FILE` moves it to `:{key}:`"
        ),
    ));
    keywords.push(Property {
        key,
        value: value.to_string(),
        line: n,
        from_keyword: true,
    });
}

fn drawer_id(drawer: &RawDrawer) -> Option<&str> {
    drawer
        .properties
        .iter()
        .find(|p| p.key == "ID")
        .map(|p| p.value.as_str())
}

fn choose(
    mut drawers: Vec<RawDrawer>,
    pick_id: Option<&str>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<RawDrawer> {
    if let Some(id) = pick_id {
        let found = drawers.iter().position(|d| drawer_id(d) == Some(id));
        return match found {
            Some(i) => Some(drawers.swap_remove(i)),
            None => {
                let ids: Vec<String> = drawers
                    .iter()
                    .filter_map(drawer_id)
                    .map(|i| format!("`{i}`"))
                    .collect();
                let known = if ids.is_empty() {
                    "no drawer here has an `:ID:`".to_string()
                } else {
                    format!("IDs here: {}", ids.join(", "))
                };
                diagnostics.push(Diagnostic::error(
                    None,
                    format!("no drawer has `:ID: {id}` — {known}"),
                ));
                None
            }
        };
    }
    match drawers.len() {
        0 => None,
        1 => drawers.pop(),
        count => {
            let lines: Vec<String> = drawers.iter().map(|d| d.open_line.to_string()).collect();
            let ids: Vec<&str> = drawers.iter().filter_map(drawer_id).collect();
            let mut distinct = ids.clone();
            distinct.sort_unstable();
            distinct.dedup();
            let hint = if ids.len() == count && distinct.len() == count {
                let listed: Vec<String> = ids.iter().map(|i| format!("`{i}`")).collect();
                format!("pick one with `--id` ({})", listed.join(", "))
            } else {
                "give each headline's drawer a distinct `:ID:` and pick one with `--id`".to_string()
            };
            diagnostics.push(Diagnostic::error(
                drawers[1].open_line,
                format!(
                    "{count} property drawers (lines {}) — one file is one deployment; {hint}",
                    lines.join(", ")
                ),
            ));
            None
        }
    }
}
