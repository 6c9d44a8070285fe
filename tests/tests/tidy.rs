//! Repository rules as plain tests, in the style of rust-analyzer's `xtask/src/tidy.rs`:
//! the kit's shape (a pure core, one edge, places that never print nor reach up into
//! the verbs), short functions, and a README that lists every dependency.

use std::path::{Path, PathBuf};

fn kit_src() -> PathBuf {
    wb_tests::repo_root().join("xtask/src")
}

/// Every `.rs` file under `dir`, with its path relative to `xtask/src`.
fn rust_files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(kit_src()).unwrap().display().to_string();
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The lines of `text` that name `needle`, outside comments.
fn naming<'a>(text: &'a str, needle: &str) -> Vec<(usize, &'a str)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let code = l.split("//").next().unwrap_or("");
            code.contains(needle)
        })
        .map(|(i, l)| (i + 1, l))
        .collect()
}

#[test]
fn the_core_is_pure() {
    let mut found = Vec::new();
    for (file, text) in rust_files(&kit_src().join("core")) {
        for needle in [
            "std::fs",
            "std::env",
            "std::process",
            "SystemTime",
            "Instant",
            "std::net",
        ] {
            for (n, line) in naming(&text, needle) {
                found.push(format!("xtask/src/{file}:{n}: {needle}: {}", line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the core names the world (capture it in edge.rs and pass a value in):\n{}",
        found.join("\n")
    );
}

#[test]
fn only_the_edge_reads_the_environment() {
    let mut found = Vec::new();
    for (file, text) in rust_files(&kit_src()) {
        if file == "edge.rs" {
            continue;
        }
        for needle in ["std::env", "env::var", "current_dir()", "is_terminal"] {
            for (n, line) in naming(&text, needle) {
                found.push(format!("xtask/src/{file}:{n}: {}", line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "only xtask/src/edge.rs may read the process environment, cwd or terminals:\n{}",
        found.join("\n")
    );
}

#[test]
fn places_never_reach_up_into_the_verbs_nor_print() {
    let mut found = Vec::new();
    for dir in ["local", "providers", "core", "state"] {
        for (file, text) in rust_files(&kit_src().join(dir)) {
            for needle in ["crate::verbs", "super::verbs", "crate::ui", "crate::cli"] {
                for (n, line) in naming(&text, needle) {
                    found.push(format!("xtask/src/{file}:{n}: {}", line.trim()));
                }
            }
        }
    }
    for (file, text) in rust_files(&kit_src()) {
        if file == "ui.rs" {
            continue;
        }
        for needle in ["println!", "print!(", "eprintln!", "eprint!("] {
            for (n, line) in naming(&text, needle) {
                found.push(format!("xtask/src/{file}:{n}: {}", line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "places report through `Report`, verbs print through `ui` (a closed pipe is no crash):\n{}",
        found.join("\n")
    );
}

/// `fn` items and their length in lines (from the signature to the closing brace at
/// the same indentation).
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let is_fn = ["fn ", "pub fn ", "pub(crate) fn ", "pub(super) fn "]
            .iter()
            .any(|p| trimmed.starts_with(p));
        if !is_fn || line.trim_end().ends_with(';') {
            continue;
        }
        let name = trimmed
            .split("fn ")
            .nth(1)
            .and_then(|r| r.split(['(', '<']).next())
            .unwrap_or("?")
            .to_string();
        let close = " ".repeat(indent) + "}";
        if let Some(end) = lines[i..]
            .iter()
            .position(|l| l.starts_with(&close) && l.len() - l.trim_start().len() == indent)
        {
            out.push((name, i + 1, end + 1));
        }
    }
    out
}

#[test]
fn no_function_is_longer_than_100_lines() {
    let mut found = Vec::new();
    for (file, text) in rust_files(&kit_src()) {
        for (name, line, len) in functions(&text) {
            if len > 100 {
                found.push(format!("xtask/src/{file}:{line}: fn {name} is {len} lines"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "split these into named steps:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_function_length_rule_sees_functions() {
    let text =
        "fn a() {\n    x();\n}\n\nimpl T {\n    pub fn b(&self) -> u8 {\n        1\n    }\n}\n";
    assert_eq!(
        functions(text),
        [("a".to_string(), 1, 3), ("b".to_string(), 6, 3)]
    );
}

#[test]
fn the_readme_lists_every_dependency_of_the_kit() {
    let root = wb_tests::repo_root();
    let manifest: toml::Table = std::fs::read_to_string(root.join("xtask/Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let deps = manifest["dependencies"].as_table().unwrap();
    let missing: Vec<&String> = deps
        .keys()
        .filter(|name| !readme.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md's dependency table does not name: {missing:?}"
    );
    for gone in ["camino", "directories"] {
        assert!(
            !readme.contains(&format!("`{gone}`")),
            "README.md still lists `{gone}`, which the kit no longer uses"
        );
    }
}
