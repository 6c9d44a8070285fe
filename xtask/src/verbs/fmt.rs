//! `fmt --migrate`: move `#+DEPLOY_<KEY>: value` keyword lines into the property drawer,
//! the canonical form. The rewrite is checked before it is written: the new text must
//! read back to the very same keys and values, or nothing is written.

use serde_json::json;

use super::{Ctx, Loaded, Outcome};
use crate::drawer;

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
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines: Vec<String> = body
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect();
    let moved_lines: Vec<usize> = moved.iter().map(|p| p.line).collect();
    let new_props: Vec<String> = moved
        .iter()
        .map(|p| format!(":{}: {}", p.key, p.value))
        .collect();
    match before.end_line {
        Some(end) => {
            let indent: String = lines[end - 1]
                .chars()
                .take_while(|c| c.is_whitespace())
                .collect();
            for (i, prop) in new_props.iter().enumerate() {
                lines.insert(end - 1 + i, format!("{indent}{prop}"));
            }
        }
        None => {
            let at = moved_lines[0] - 1;
            let id = before.value("ID").unwrap_or("deployment");
            let mut block = vec![format!("* {id} :deployment:"), ":PROPERTIES:".to_string()];
            block.extend(new_props.iter().cloned());
            block.push(":END:".to_string());
            for (i, line) in block.into_iter().enumerate() {
                lines.insert(at + i, line);
            }
        }
    }
    // Drop the keyword lines (their indices moved by what was inserted above them).
    let inserted_at = before.end_line.map(|e| e - 1).unwrap_or(moved_lines[0] - 1);
    let shift = new_props.len() + if before.end_line.is_some() { 0 } else { 3 };
    let mut drop: Vec<usize> = moved_lines
        .iter()
        .map(|&n| {
            if n > inserted_at {
                n - 1 + shift
            } else {
                n - 1
            }
        })
        .collect();
    drop.sort_unstable_by(|a, b| b.cmp(a));
    for index in drop {
        lines.remove(index);
    }
    let out = lines.join(newline);

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

pub fn run(ctx: &Ctx, loaded: &Loaded) -> Outcome {
    let Some(text) = &loaded.text else {
        loaded.report(ctx);
        return Outcome::error(format!("cannot read {}", loaded.shown));
    };
    match migrate(text) {
        Err(e) => {
            loaded.report(ctx);
            Outcome::error(e)
        }
        Ok(None) => {
            ctx.say(format!(
                "{}: nothing to migrate — no `#+DEPLOY_*` keyword properties",
                loaded.shown
            ));
            Outcome::ok(json!({ "file": loaded.shown, "changed": false }))
        }
        Ok(Some(new)) => match crate::state::atomic_write(&loaded.path, new.as_bytes(), 0o644) {
            Err(e) => Outcome::error(e),
            Ok(()) => {
                ctx.say(format!(
                    "{}: keyword properties moved into the drawer",
                    loaded.shown
                ));
                Outcome::ok(json!({ "file": loaded.shown, "changed": true }))
            }
        },
    }
}
