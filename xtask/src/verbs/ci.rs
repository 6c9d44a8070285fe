//! `cargo xtask ci`: everything CI checks, in one command — the README's test command.
//!
//! fmt, clippy with warnings denied, shellcheck of every recipe, the flake's syntax, and
//! every test with snapshot drift failing (insta never writes or accepts snapshots here).
//! A tool that is missing fails the run under `WB_REQUIRE_TOOLS=1` (CI) and is reported
//! as skipped otherwise.

use std::path::{Path, PathBuf};

use xshell::{Shell, cmd};

use crate::edge::Edge;
use crate::error::Error;
use crate::ui::err;

fn repo_root(edge: &Edge) -> Result<PathBuf, String> {
    edge.cwd
        .ancestors()
        .find(|d| d.join("xtask/Cargo.toml").is_file() && d.join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| "run `cargo xtask ci` inside the repository".to_string())
}

pub fn run(edge: &Edge) -> Result<(), Error> {
    run_all(edge).map_err(|e| Error::Failed(format!("ci: FAILED — {e}")))?;
    err("ci: all checks passed\n");
    Ok(())
}

fn run_all(edge: &Edge) -> Result<(), String> {
    let root = repo_root(edge)?;
    let sh = Shell::new().map_err(|e| e.to_string())?;
    sh.change_dir(&root);
    let required = edge.vars.get("WB_REQUIRE_TOOLS") == Some("1");
    let have = |tool: &str| edge.vars.which(tool).is_some();
    let step = |name: &str| err(&format!("\n== ci: {name}\n"));
    let missing = |tool: &str| -> Result<(), String> {
        if required {
            Err(format!(
                "`{tool}` is required (WB_REQUIRE_TOOLS=1) but not on PATH — .ci/run installs it"
            ))
        } else {
            err(&format!("SKIPPED: `{tool}` is not on PATH\n"));
            Ok(())
        }
    };

    step("rustfmt");
    cmd!(sh, "cargo fmt --all -- --check")
        .run()
        .map_err(fail("formatting differs — run `cargo fmt --all`"))?;

    step("clippy");
    cmd!(
        sh,
        "cargo clippy --workspace --all-targets --quiet -- -D warnings"
    )
    .run()
    .map_err(fail("clippy"))?;

    step("shellcheck");
    if have("shellcheck") {
        let mut scripts = Vec::new();
        collect_scripts(&root.join("recipes"), &mut scripts);
        collect_scripts(&root.join(".ci"), &mut scripts);
        cmd!(sh, "shellcheck -x {scripts...}")
            .run()
            .map_err(fail("shellcheck"))?;
    } else {
        missing("shellcheck")?;
    }

    step("flake syntax");
    if have("nix-instantiate") {
        cmd!(sh, "nix-instantiate --parse flake.nix")
            .quiet()
            .ignore_stdout()
            .run()
            .map_err(fail("flake.nix does not parse"))?;
        let lock = std::fs::read_to_string(root.join("flake.lock"))
            .map_err(|e| format!("flake.lock: {e}"))?;
        serde_json::from_str::<serde_json::Value>(&lock)
            .map_err(|e| format!("flake.lock is not JSON: {e}"))?;
    } else {
        missing("nix-instantiate")?;
    }

    step("tests (snapshot drift fails; nothing is auto-accepted)");
    let _insta = sh.push_env("INSTA_UPDATE", "no");
    let _force = sh.push_env("INSTA_FORCE_PASS", "0");
    if have("cargo-nextest") {
        cmd!(sh, "cargo nextest run --workspace --no-fail-fast")
            .run()
            .map_err(fail("tests"))?;
    } else {
        cmd!(sh, "cargo test --workspace --no-fail-fast")
            .run()
            .map_err(fail("tests"))?;
    }
    Ok(())
}

fn fail(what: &str) -> impl Fn(xshell::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn collect_scripts(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            collect_scripts(&path, out);
        } else if path.extension().is_some_and(|e| e == "sh")
            || path.file_name().is_some_and(|n| n == "run")
        {
            out.push(path);
        }
    }
}
