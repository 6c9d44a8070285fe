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
///
/// Cargo's own stderr is read line by line, not passed through: an up-to-date build
/// (cargo says only `Finished`) prints nothing; the first `Compiling` announces `what`
/// as progress, then each crate cargo compiles (a wait for cargo's lock is said as such). On failure cargo's whole stderr is part of the error.
fn cargo_build_engine(
    edge: &Edge,
    report: &dyn Report,
    what: &str,
    extra: &[&str],
    rustflags: Option<&str>,
) -> Result<PathBuf, String> {
    use std::io::{BufRead, Read};
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
    let mut cmd = std::process::Command::new(cargo(edge));
    cmd.args(&args)
        .current_dir(&root)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(flags) = rustflags {
        cmd.env("RUSTFLAGS", flags);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run cargo to build the engine: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let mut errors = String::new();
    let mut announced = false;
    let stderr = std::io::BufReader::new(child.stderr.take().expect("piped"));
    for line in stderr.lines().map_while(Result::ok) {
        errors.push_str(&line);
        errors.push('\n');
        let word = line.trim_start();
        if word.starts_with("Blocking") {
            report.progress("waiting for another cargo (it holds the target directory's lock) …");
            continue;
        }
        let Some(krate) = word.strip_prefix("Compiling ") else {
            continue;
        };
        if !announced {
            announced = true;
            report.progress(&format!("building {what} ({}) …", shown(&args)));
        }
        report.progress(&format!("  compiling {krate}"));
    }
    let status = child
        .wait()
        .map_err(|e| format!("cannot run cargo to build the engine: {e}"))?;
    let stdout = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!(
            "`cargo {}` failed in {}:\n{}",
            args.join(" "),
            root.display(),
            errors.trim_end()
        ));
    }
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "wb-engine")
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .next_back()
        .ok_or_else(|| "cargo built wb-engine but named no executable".to_string())
}

/// A cargo command line as the user would type it (without the JSON message format).
fn shown(args: &[&str]) -> String {
    let words: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| !a.starts_with("--message-format"))
        .collect();
    format!("cargo {}", words.join(" "))
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
    cargo_build_engine(edge, report, "the reference engine", &[], None)
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
    let binary = cargo_build_engine(
        edge,
        report,
        "the static engine",
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
        let context_arg = context.display().to_string();
        let containerfile = context.join("Containerfile").display().to_string();
        run_build(report, tool, tag, &containerfile, &context_arg)
    })();
    let _ = std::fs::remove_dir_all(&context);
    result
}

/// The first line of the legacy docker builder's deprecation banner.
const LEGACY_BANNER: &str = "DEPRECATED: The legacy builder is deprecated";

/// `TOOL build -t TAG` (BuildKit through `docker buildx build --load` when docker has
/// buildx): its output becomes progress lines; docker's legacy-builder banner is replaced
/// by one line that says why it is harmless here. On failure the whole output is the error.
fn run_build(
    report: &dyn Report,
    tool: &str,
    tag: &str,
    containerfile: &str,
    context: &str,
) -> Result<(), String> {
    use std::io::BufRead;
    let buildx = tool == "docker" && has_buildx();
    let mut args: Vec<&str> = if buildx {
        vec!["buildx", "build", "--load"]
    } else {
        vec!["build"]
    };
    args.extend(["-t", tag, "-f", containerfile, context]);
    report.progress(&format!("{tool} {} …", args[..args.len() - 3].join(" ")));
    let reader = duct::cmd(tool, &args)
        .stderr_to_stdout()
        .stdin_null()
        .unchecked()
        .reader()
        .map_err(|e| format!("cannot run {tool}: {e}"))?;
    let mut output = String::new();
    let mut in_banner = false;
    let lines = std::io::BufReader::new(&reader);
    for line in lines.lines().map_while(Result::ok) {
        output.push_str(&line);
        output.push('\n');
        if let Some(said) = build_line(&line, &mut in_banner) {
            report.progress(&said);
        }
    }
    let ok = matches!(reader.try_wait(), Ok(Some(out)) if out.status.success());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{tool} {}` failed:\n{}",
            args[..args.len() - 3].join(" "),
            output.trim_end()
        ))
    }
}

/// What a line of the build tool's output becomes as progress: indented, except that
/// docker's legacy-builder banner becomes one line saying why it is harmless here.
fn build_line(line: &str, in_banner: &mut bool) -> Option<String> {
    if line.starts_with(LEGACY_BANNER) {
        *in_banner = true;
        return Some(
            "  (docker's legacy builder: buildx is not installed — fine for this one-file image)"
                .into(),
        );
    }
    if *in_banner && (line.starts_with(' ') || line.is_empty()) {
        return None;
    }
    *in_banner = false;
    (!line.trim().is_empty()).then(|| format!("  {}", line.trim_end()))
}

/// Whether docker has the buildx plugin (BuildKit).
fn has_buildx() -> bool {
    duct::cmd("docker", ["buildx", "version"])
        .stdout_null()
        .stderr_null()
        .unchecked()
        .run()
        .is_ok_and(|o| o.status.success())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The banner as Debian's docker.io prints it when buildx is not installed.
    #[test]
    fn the_legacy_builder_banner_becomes_one_explained_line() {
        let output = "DEPRECATED: The legacy builder is deprecated and will be removed in a future release.\n            Install the buildx component to build images with BuildKit:\n            https://docs.docker.com/go/buildx/\n\nSending build context to Docker daemon  4.2MB\nStep 1/4 : FROM scratch\n";
        let mut in_banner = false;
        let said: Vec<String> = output
            .lines()
            .filter_map(|l| build_line(l, &mut in_banner))
            .collect();
        assert_eq!(
            said,
            [
                "  (docker's legacy builder: buildx is not installed — fine for this one-file image)",
                "  Sending build context to Docker daemon  4.2MB",
                "  Step 1/4 : FROM scratch",
            ]
        );
    }
}
