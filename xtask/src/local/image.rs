//! The reference engine, built from the workspace: as a debug binary for the `process`
//! backend, and as a static binary in a `FROM scratch` OCI image (`cargo xtask engine
//! image [--tag T]`, default `localhost/wb-engine:dev`) for the container backends.

use std::path::{Path, PathBuf};

use super::backend;
use crate::verbs::Ctx;

/// The tag of the reference engine's image.
pub const REFERENCE_IMAGE: &str = "localhost/wb-engine:dev";

/// `cargo xtask engine image [--tag T]`.
pub fn build_command(tag: Option<&str>) -> i32 {
    let ctx = Ctx::from_env(false);
    let tag = tag.unwrap_or(REFERENCE_IMAGE);
    let result = image_tool().and_then(|tool| {
        build_image(&ctx, tool, tag)?;
        Ok(tool)
    });
    match result {
        Ok(tool) => {
            ctx.say(ctx.good(&format!("image built — {tag} ({tool})")));
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// The tool that builds images: `WB_VMM_BACKEND` when it names docker or podman, else
/// docker when its daemon answers, else podman.
pub fn image_tool() -> Result<&'static str, String> {
    match std::env::var("WB_VMM_BACKEND")
        .ok()
        .as_deref()
        .map(str::trim)
    {
        Some("docker") => return Ok("docker"),
        Some("podman") => return Ok("podman"),
        _ => {}
    }
    if backend::docker_reachable() {
        Ok("docker")
    } else if backend::on_path("podman") {
        Ok("podman")
    } else {
        Err("building an image needs podman or a reachable docker daemon — install one (see `cargo xtask deploy doctor`)".into())
    }
}

/// The repository root: the first directory holding `engine/Containerfile` and the
/// workspace `Cargo.toml`, walking up from the working directory, then from the kit's
/// own binary (which normally sits in the repository's `target/`).
pub fn repo_root() -> Result<PathBuf, String> {
    let is_root = |dir: &Path| {
        dir.join("engine/Containerfile").is_file()
            && dir.join("engine/Cargo.toml").is_file()
            && std::fs::read_to_string(dir.join("Cargo.toml"))
                .is_ok_and(|t| t.contains("[workspace]"))
    };
    let starts = [
        std::env::current_dir().ok(),
        std::env::current_exe()
            .ok()
            .and_then(|p| p.canonicalize().ok()),
    ];
    for start in starts.into_iter().flatten() {
        if let Some(root) = start.ancestors().find(|d| is_root(d)) {
            return Ok(root.to_path_buf());
        }
    }
    Err("cannot find the kit's repository (a directory with engine/Containerfile) from the working directory or the kit's binary — run from the repository, or set WB_ENGINE_BIN".into())
}

fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// `cargo build -p wb-engine [extra]` in the repository; returns the binary's path (read
/// from cargo's JSON messages, so `CARGO_TARGET_DIR` and `--target` are honored).
fn cargo_build_engine(extra: &[&str], rustflags: Option<&str>) -> Result<PathBuf, String> {
    let root = repo_root()?;
    let mut args = vec![
        "build",
        "-p",
        "wb-engine",
        "--bin",
        "wb-engine",
        "--message-format=json-render-diagnostics",
    ];
    args.extend_from_slice(extra);
    let mut cmd = duct::cmd(cargo(), &args)
        .dir(&root)
        .stdout_capture()
        .unchecked();
    if let Some(flags) = rustflags {
        cmd = cmd.env("RUSTFLAGS", flags);
    }
    let out = cmd
        .run()
        .map_err(|e| format!("cannot run cargo to build the engine: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`cargo {}` failed in {} (its errors are above)",
            args.join(" "),
            root.display()
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "wb-engine")
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .next_back()
        .ok_or_else(|| "cargo built wb-engine but named no executable".to_string())
}

/// The workspace's reference engine (debug build), built on demand: the `process`
/// backend's default engine.
pub fn build_engine(ctx: &Ctx) -> Result<PathBuf, String> {
    if !ctx.json {
        ctx.say("building the reference engine (cargo build -p wb-engine) …");
    }
    cargo_build_engine(&[], None)
}

/// The Linux target triple of this machine.
fn linux_target() -> Result<String, String> {
    if std::env::consts::OS != "linux" {
        return Err(format!(
            "the engine image holds a static Linux binary, which this kit builds only on Linux (this is {}) — build it in a Linux VM, or pull an image and set IMAGE",
            std::env::consts::OS
        ));
    }
    Ok(format!("{}-unknown-linux-gnu", std::env::consts::ARCH))
}

/// Builds the static engine and the `FROM scratch` image `tag` with `tool`.
pub fn build_image(ctx: &Ctx, tool: &str, tag: &str) -> Result<(), String> {
    let target = linux_target()?;
    ctx.say(format!(
        "building the static engine (cargo build -p wb-engine --release --target {target}) …"
    ));
    let binary = cargo_build_engine(
        &["--release", "--target", &target],
        Some("-C target-feature=+crt-static"),
    )?;
    let root = repo_root()?;
    let context = std::env::temp_dir().join(format!("wb-engine-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&context);
    crate::state::ensure_private_dir(&context)?;
    let result = (|| {
        let copy = |from: &Path, name: &str| {
            std::fs::copy(from, context.join(name))
                .map(|_| ())
                .map_err(|e| format!("cannot copy {} into the build context: {e}", from.display()))
        };
        copy(&binary, "wb-engine")?;
        copy(&root.join("engine/Containerfile"), "Containerfile")?;
        ctx.say(format!("{tool} build -t {tag} …"));
        let context_arg = context.display().to_string();
        let containerfile = context.join("Containerfile").display().to_string();
        let out = duct::cmd(
            tool,
            ["build", "-t", tag, "-f", &containerfile, &context_arg],
        )
        // The tool's progress is human text: stderr, so `--json` stdout stays one object.
        .stdout_to_stderr()
        .unchecked()
        .run()
        .map_err(|e| format!("cannot run {tool}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`{tool} build -t {tag}` failed (its output is above)"
            ))
        }
    })();
    let _ = std::fs::remove_dir_all(&context);
    result
}

/// The local image id of `reference`, if the tool has it (no pull).
pub fn image_id(tool: &str, reference: &str) -> Option<String> {
    let out = duct::cmd(tool, ["image", "inspect", "--format", "{{.Id}}", reference])
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .run()
        .ok()?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !id.is_empty()).then_some(id)
}

/// `(tag, id)` for every local image among `references`, in one call of the tool (no
/// pull; a missing one is simply absent from the answer).
pub fn image_ids(tool: &str, references: &[&str]) -> Vec<(String, String)> {
    let mut args = vec![
        "image",
        "inspect",
        "--format",
        "{{.Id}}{{range .RepoTags}} {{.}}{{end}}",
    ];
    args.extend_from_slice(references);
    let Ok(out) = duct::cmd(tool, &args)
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .run()
    else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut words = line.split_whitespace();
        let Some(id) = words.next() else { continue };
        let tags: Vec<&str> = words.collect();
        if tags.is_empty() {
            found.push((String::new(), id.to_string()));
        }
        found.extend(tags.into_iter().map(|t| (t.to_string(), id.to_string())));
    }
    found
}
