//! Diagnostics: one problem, where it is, and how it renders for a human or as JSON.
//!
//! Every message is built here from a line number and a text; the verbs never format a
//! `file:line` themselves. Messages never carry a secret value (the reader and the
//! validator only ever quote keys, never values of keys that could hold credentials).

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// 1-based line in the deployment file, where one applies.
    pub line: Option<usize>,
    pub message: String,
    /// The source line may hold a credential: never echo it under the message.
    pub sensitive: bool,
}

impl Diagnostic {
    pub fn error(line: impl Into<Option<usize>>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            line: line.into(),
            message: message.into(),
            sensitive: false,
        }
    }

    pub fn warning(line: impl Into<Option<usize>>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            line: line.into(),
            message: message.into(),
            sensitive: false,
        }
    }

    /// Marks the diagnostic's line as one whose text must not be shown.
    pub fn sensitive(mut self) -> Diagnostic {
        self.sensitive = true;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line: message`, or `file: message` where no line applies.
    pub fn located(&self, file: &str) -> String {
        match self.line {
            Some(line) => format!("{file}:{line}: {}", self.message),
            None => format!("{file}: {}", self.message),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({ "line": self.line, "message": self.message })
    }
}

/// How many diagnostics of one kind are shown before the rest are counted (SPEC §18).
pub const SHOWN_PER_KIND: usize = 20;

/// A diagnostic's kind: its message with the quoted (`…`) parts and numbers blanked,
/// up to the first ` — ` (the hint). Two unknown keys, or two unset secrets, are one kind.
fn kind(d: &Diagnostic) -> (Severity, String) {
    let head = d.message.split(" — ").next().unwrap_or_default();
    let mut out = String::with_capacity(head.len());
    let mut quoted = false;
    for c in head.chars() {
        match c {
            '`' => {
                quoted = !quoted;
                out.push('`');
            }
            _ if quoted => {}
            '0'..='9' => {
                if !out.ends_with('#') {
                    out.push('#');
                }
            }
            _ => out.push(c),
        }
    }
    (d.severity, out)
}

/// Keeps the first [`SHOWN_PER_KIND`] diagnostics of each kind; the rest of a kind
/// become one `… and N more like this` after its last shown one (SPEC §18), so a 1 MiB
/// file of one mistake repeated makes a short report, not megabytes.
pub fn cap_repeated(diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    use std::collections::HashMap;
    if diagnostics.len() <= SHOWN_PER_KIND {
        return diagnostics;
    }
    // Each kind hashed once per diagnostic: an index, then counts by index.
    let mut index: HashMap<(Severity, String), usize> = HashMap::new();
    let kinds: Vec<usize> = diagnostics
        .iter()
        .map(|d| {
            let next = index.len();
            *index.entry(kind(d)).or_insert(next)
        })
        .collect();
    let mut total = vec![0usize; index.len()];
    for &k in &kinds {
        total[k] += 1;
    }
    let mut seen = vec![0usize; index.len()];
    let mut out = Vec::new();
    for (d, &k) in diagnostics.into_iter().zip(&kinds) {
        seen[k] += 1;
        let severity = d.severity;
        if seen[k] <= SHOWN_PER_KIND {
            out.push(d);
        }
        if seen[k] == SHOWN_PER_KIND && total[k] > SHOWN_PER_KIND {
            out.push(Diagnostic {
                severity,
                line: None,
                message: format!("… and {} more like this", total[k] - SHOWN_PER_KIND),
                sensitive: false,
            });
        }
    }
    out
}

/// The human report of a validation: the problems, each with its source line under it.
///
/// `source` is the file's text, for the excerpt; a line marked sensitive anywhere is
/// never excerpted, since it may hold a credential someone pasted into the file.
pub fn render_report(
    file: &str,
    source: Option<&str>,
    diagnostics: &[Diagnostic],
    color: bool,
) -> String {
    let hide_lines: std::collections::HashSet<usize> = diagnostics
        .iter()
        .filter(|d| d.sensitive)
        .filter_map(|d| d.line)
        .collect();
    let lines: Vec<&str> = source.map(|s| s.lines().collect()).unwrap_or_default();
    let (errors, warnings): (Vec<&Diagnostic>, Vec<&Diagnostic>) =
        diagnostics.iter().partition(|d| d.is_error());
    let mut out = String::new();
    let paint = |code: &str, text: &str| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    };
    let section = |title: String, items: &[&Diagnostic], out: &mut String| {
        if items.is_empty() {
            return;
        }
        out.push_str(&title);
        out.push('\n');
        for d in items {
            out.push_str(&format!("- {}\n", d.located(file)));
            if let Some(n) = d.line
                && !hide_lines.contains(&n)
                && let Some(text) = lines.get(n - 1)
            {
                let text = text.trim_end_matches('\r');
                if text.chars().count() <= 200 {
                    out.push_str(&format!("    {n:>4} | {text}\n"));
                }
            }
        }
    };
    section(paint("1;31", "invalid deployment:"), &errors, &mut out);
    section(paint("1;33", "warnings:"), &warnings, &mut out);
    out
}
