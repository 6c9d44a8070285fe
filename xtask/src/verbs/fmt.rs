//! `fmt --migrate`: move `#+DEPLOY_<KEY>: value` keyword lines into the property drawer,
//! the canonical form. The rewrite is checked before it is written: the new text must
//! read back to the very same keys and values, or nothing is written.

use serde_json::json;

use super::{Ctx, Outcome, Verdict};
use crate::core::drawer;
use crate::load::Loaded;

/// The rewritten text, or `None` when there is nothing to migrate.
pub fn migrate(text: &str) -> Result<Option<String>, String> {
    let before = drawer::read(text, None);
    if before.has_errors() {
        return Err("the file has structural problems — fix what `validate` reports first".into());
    }
    let moved: Vec<&drawer::Property> = before
        .properties
        .iter()
        .filter(|p| p.from_keyword)
        .collect();
    if moved.is_empty() {
        return Ok(None);
    }
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let body = drawer::strip_boms(text);
    let lines: Vec<&str> = body
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let moved_lines: Vec<usize> = moved.iter().map(|p| p.line).collect();
    let props = moved.iter().map(|p| format!(":{}: {}", p.key, p.value));
    // One pass: drop the keyword lines, and emit the properties just before the drawer's
    // `:END:` (indented like it) — or, with no drawer, a new headline and drawer where the
    // first keyword line stood.
    let (insert_before, block): (usize, Vec<String>) = match before.end_line {
        Some(end) => {
            let indent: String = lines[end - 1]
                .chars()
                .take_while(|c| c.is_whitespace())
                .collect();
            (end, props.map(|p| format!("{indent}{p}")).collect())
        }
        None => {
            let id = before.value("ID").unwrap_or("deployment");
            let mut block = vec![format!("* {id} :deployment:"), ":PROPERTIES:".to_string()];
            block.extend(props);
            block.push(":END:".to_string());
            (moved_lines[0], block)
        }
    };
    let mut out_lines: Vec<String> = Vec::with_capacity(lines.len() + block.len());
    for (index, line) in lines.iter().enumerate() {
        let n = index + 1;
        if n == insert_before {
            out_lines.extend(block.iter().cloned());
        }
        if !moved_lines.contains(&n) {
            out_lines.push(line.to_string());
        }
    }
    let out = out_lines.join(newline);

    let after = drawer::read(&out, None);
    let pairs = |d: &drawer::Drawer| {
        let mut v: Vec<(String, String)> = d
            .properties
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect();
        v.sort();
        v
    };
    let names = |d: &drawer::Drawer| d.secrets.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    if after.has_errors() || pairs(&after) != pairs(&before) || names(&after) != names(&before) {
        return Err("the rewrite would not read back to the same deployment — nothing was written; please report this".into());
    }
    Ok(Some(out))
}

pub fn run(cx: &Ctx, loaded: &Loaded) -> Verdict {
    let Some(text) = &loaded.text else {
        loaded.report(&cx.ui);
        return Err(format!("cannot read {}", loaded.shown).into());
    };
    let new = match migrate(text) {
        Err(e) => {
            loaded.report(&cx.ui);
            return Err(e.into());
        }
        Ok(None) => {
            cx.ui.say(&format!(
                "{}: nothing to migrate — no `#+DEPLOY_*` keyword properties",
                loaded.shown
            ));
            return Ok(Outcome::ok(
                json!({ "file": loaded.shown, "changed": false }),
            ));
        }
        Ok(Some(new)) => new,
    };
    // Write through a symlink to its target, keeping the file's mode.
    let target = std::fs::canonicalize(&loaded.path)
        .map_err(|e| format!("cannot resolve {}: {e}", loaded.shown))?;
    let mode = std::fs::metadata(&target)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
        .unwrap_or(0o644);
    crate::state::atomic_write(&target, new.as_bytes(), mode)?;
    cx.ui.say(&format!(
        "{}: keyword properties moved into the drawer",
        loaded.shown
    ));
    Ok(Outcome::ok(
        json!({ "file": loaded.shown, "changed": true }),
    ))
}
