//! The reference engine, built from the workspace: as a debug binary for the `process`
//! backend, and as a static binary in a `FROM scratch` OCI image (`cargo xtask engine
//! image [--tag T]`, default `localhost/wb-engine:dev`) for the container backends.

use std::path::{Path, PathBuf};

use super::registry::{self, Kind};
use crate::edge::Edge;
use crate::report::Report;

/// The tag of the reference engine's image.
pub const REFERENCE_IMAGE: &str = "localhost/wb-engine:dev";

/// `cargo xtask engine image [--tag T]`: builds the image, returns the tool used.
pub fn build_command(
    edge: &Edge,
    report: &dyn Report,
    tag: Option<&str>,
) -> Result<String, String> {
    let tag = tag.unwrap_or(REFERENCE_IMAGE);
    let tool = image_tool(edge)?;
    build_image(edge, report, tool, tag)?;
    Ok(format!("image built — {tag} ({tool})"))
}

/// The tool that builds images: `WB_VMM_BACKEND` when it names docker or podman, else
/// docker when its daemon answers, else podman.
pub fn image_tool(edge: &Edge) -> Result<&'static str, String> {
    match registry::forced(edge)? {
        Some(Kind::Docker) => return Ok("docker"),
        Some(Kind::Podman) => return Ok("podman"),
        _ => {}
    }
    if registry::docker_reachable(edge) {
        Ok("docker")
    } else if edge.vars.which("podman").is_some() {
        Ok("podman")
    } else {
        Err("building an image needs podman or a reachable docker daemon — install one (see `cargo xtask deploy doctor`)".into())
    }
}

/// The repository root: the first directory holding `engine/Containerfile` and the
/// workspace `Cargo.toml`, walking up from the working directory, then from the kit's
/// own binary (which normally sits in the repository's `target/`).
pub fn repo_root(edge: &Edge) -> Result<PathBuf, String> {
    let is_root = |dir: &Path| {
        dir.join("engine/Containerfile").is_file()
            && dir.join("engine/Cargo.toml").is_file()
            && std::fs::read_to_string(dir.join("Cargo.toml"))
                .is_ok_and(|t| t.contains("[workspace]"))
    };
    let starts = [
        Some(edge.cwd.clone()),
        edge.exe.as_ref().and_then(|p| p.canonicalize().ok()),
    ];
    for start in starts.into_iter().flatten() {
        if let Some(root) = start.ancestors().find(|d| is_root(d)) {
            return Ok(root.to_path_buf());
        }
    }
    Err("cannot find the kit's repository (a directory with engine/Containerfile) from the working directory or the kit's binary — run from the repository, or set WB_ENGINE_BIN".into())
}

fn cargo(edge: &Edge) -> std::ffi::OsString {
    edge.vars
        .os("CARGO")
        .map(ToOwned::to_owned)
        .unwrap_or_else(|| "cargo".into())
}

/// `cargo build -p wb-engine [extra]` in the repository; returns the binary's path (read
/// from cargo's JSON messages, so `CARGO_TARGET_DIR` and `--target` are honored).
fn cargo_build_engine(
    edge: &Edge,
    extra: &[&str],
    rustflags: Option<&str>,
) -> Result<PathBuf, String> {
    let root = repo_root(edge)?;
    let mut args = vec![
        "build",
        "-p",
        "wb-engine",
        "--bin",
        "wb-engine",
        "--message-format=json-render-diagnostics",
    ];
    args.extend_from_slice(extra);
    let mut cmd = duct::cmd(cargo(edge), &args)
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

/// The engine the `process` backend runs when `WB_ENGINE_BIN` is unset: in the kit's
/// repository, the workspace's reference engine (debug build, built on demand);
/// elsewhere, `wb-engine` on PATH.
pub fn find_engine(edge: &Edge, report: &dyn Report) -> Result<PathBuf, String> {
    if repo_root(edge).is_err() {
        return edge.vars.which("wb-engine").ok_or_else(|| {
            "no engine to run: set WB_ENGINE_BIN to a wb-engine binary, put `wb-engine` on PATH, or run from the kit's repository (which builds it)".to_string()
        });
    }
    report.info("building the reference engine (cargo build -p wb-engine) …");
    cargo_build_engine(edge, &[], None)
}

/// The Linux target triple of this machine.
fn linux_target() -> Result<String, String> {
    if !cfg!(target_os = "linux") {
        return Err(
            "the engine image holds a static Linux binary, which this kit builds only on Linux — build it in a Linux VM, or pull an image and set IMAGE".into(),
        );
    }
    let arch = if cfg!(target_arch = "aarch64") {
        "aarch64"
    } else {
        "x86_64"
    };
    Ok(format!("{arch}-unknown-linux-gnu"))
}

/// Builds the static engine and the `FROM scratch` image `tag` with `tool`.
pub fn build_image(edge: &Edge, report: &dyn Report, tool: &str, tag: &str) -> Result<(), String> {
    let target = linux_target()?;
    report.info(&format!(
        "building the static engine (cargo build -p wb-engine --release --target {target}) …"
    ));
    let binary = cargo_build_engine(
        edge,
        &["--release", "--target", &target],
        Some("-C target-feature=+crt-static"),
    )?;
    let root = repo_root(edge)?;
    let context = edge
        .temp
        .join(format!("wb-engine-image-{}", std::process::id()));
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
        report.info(&format!("{tool} build -t {tag} …"));
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
