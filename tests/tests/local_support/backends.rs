//! The backends the contract suite runs on — process, podman, docker — and what it asks
//! of each: a sandbox forcing it (`WB_VMM_BACKEND`), or a skip with a printed reason
//! (a failure under `WB_REQUIRE_TOOLS=1`); the running engine's identity (pid or
//! container id), its environment, its argv-like records; a `kill -9`; an engine that
//! fails at boot. Everything else in the contract is the same for all of them.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use wb_tests::Sandbox;

use super::{alive, write_deployment};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Process,
    Podman,
    Docker,
}

/// The image the container backends run when IMAGE is absent (built by the kit).
pub const REFERENCE_IMAGE: &str = "localhost/wb-engine:dev";
/// The reference image with `WB_BIND=not-an-ip`: an engine that refuses to boot.
pub const BROKEN_IMAGE: &str = "localhost/wb-engine-broken:test";

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Process => "process",
            Kind::Podman => "podman",
            Kind::Docker => "docker",
        }
    }

    pub fn is_container(self) -> bool {
        self != Kind::Process
    }

    /// A sandbox whose kit runs on this backend, or `None` (skipped, reason printed)
    /// when the backend cannot run here and `WB_REQUIRE_TOOLS` is not `1`.
    pub fn sandbox(self) -> Option<Sandbox> {
        let mut sb = Sandbox::new();
        sb.set("WB_VMM_BACKEND", self.name());
        match self {
            Kind::Process => {
                sb.set(
                    "WB_ENGINE_BIN",
                    wb_tests::engine_bin().display().to_string(),
                );
            }
            Kind::Podman => {
                if !wb_tests::require_tool("podman") {
                    return None;
                }
                sb.set("CONTAINERS_CONF", containers_conf());
            }
            Kind::Docker => {
                if !docker_daemon_answers() {
                    return None;
                }
            }
        }
        if self.is_container() {
            images(self);
        }
        Some(sb)
    }

    /// `<tool> args…` (podman with the sandbox's containers.conf).
    pub fn tool(self, args: &[&str]) -> Output {
        assert!(self.is_container());
        let mut cmd = Command::new(self.name());
        cmd.args(args).stdin(Stdio::null());
        if self == Kind::Podman {
            cmd.env("CONTAINERS_CONF", containers_conf());
        }
        cmd.output().expect("the container tool runs")
    }

    #[track_caller]
    fn tool_ok(self, args: &[&str]) -> String {
        let out = self.tool(args);
        assert!(
            out.status.success(),
            "{} {args:?}: {}",
            self.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `inspect` of a container, or `None` when there is no such container.
    pub fn inspect(self, container: &str) -> Option<Value> {
        let out = self.tool(&["inspect", "--type", "container", container]);
        if !out.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).expect("inspect prints JSON");
        Some(v[0].clone())
    }

    /// The engine an apply/status JSON names: its pid (process) or container id.
    #[track_caller]
    pub fn identity(self, v: &Value) -> String {
        match self {
            Kind::Process => v["pid"].as_u64().expect("a pid").to_string(),
            _ => {
                let name = v["container"].as_str().expect("a container");
                let c = self.inspect(name).expect("the container exists");
                c["Id"].as_str().unwrap().to_string()
            }
        }
    }

    /// Whether the engine with this identity still exists (running or not).
    pub fn exists(self, identity: &str) -> bool {
        match self {
            Kind::Process => alive(identity.parse().unwrap()),
            _ => self.inspect(identity).is_some(),
        }
    }

    /// Whether the engine with this identity is running.
    pub fn running(self, identity: &str) -> bool {
        match self {
            Kind::Process => alive(identity.parse().unwrap()),
            _ => self
                .inspect(identity)
                .is_some_and(|c| c["State"]["Running"] == true),
        }
    }

    /// The engine's environment, `NAME=value` per entry: `/proc/<pid>/environ` for the
    /// process backend, the container config's `Env` for the others.
    pub fn engine_env(self, v: &Value) -> Vec<String> {
        match self {
            Kind::Process => {
                let pid = v["pid"].as_u64().expect("a pid");
                let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
                raw.split(|b| *b == 0)
                    .filter(|e| !e.is_empty())
                    .map(|e| String::from_utf8_lossy(e).into_owned())
                    .collect()
            }
            _ => {
                let c = self
                    .inspect(v["container"].as_str().expect("a container"))
                    .expect("the container exists");
                c["Config"]["Env"]
                    .as_array()
                    .expect("Config.Env")
                    .iter()
                    .map(|e| e.as_str().unwrap().to_string())
                    .collect()
            }
        }
    }

    /// `kill -9` of the engine (the container tools: `kill --signal KILL`).
    pub fn kill9(self, v: &Value) {
        match self {
            Kind::Process => {
                let pid = v["pid"].as_u64().expect("a pid").to_string();
                let status = Command::new("kill").args(["-9", &pid]).status().unwrap();
                assert!(status.success());
            }
            _ => {
                let name = v["container"].as_str().expect("a container");
                self.tool_ok(&["kill", "--signal", "KILL", name]);
            }
        }
    }

    /// What a backend keeps about a container that must never hold a secret value: the
    /// whole `inspect` record except `Config.Env`, where the engine's environment lives
    /// by design (docker documents it; SPEC §18 "Secrets on backends").
    pub fn inspect_without_env(self, v: &Value) -> Value {
        let mut c = self
            .inspect(v["container"].as_str().expect("a container"))
            .expect("the container exists");
        c["Config"]
            .as_object_mut()
            .expect("Config")
            .remove("Env")
            .expect("Config.Env is there");
        c
    }

    /// Removes every container labelled for deployment `id` (the kit labels them
    /// `sh.workbooks.deployment=<id>`), whatever the kit left.
    pub fn remove_containers(self, id: &str) {
        let filter = format!("label=sh.workbooks.deployment={id}");
        let out = self.tool(&["ps", "-aq", "--filter", &filter]);
        for cid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = self.tool(&["rm", "-f", cid]);
        }
    }

    /// Makes deployment `id` an engine that fails at boot: the process backend gets an
    /// engine binary that exits 1 naming a frobnicator (until [`Crash::repair`]), the
    /// container backends an image whose engine refuses `WB_BIND`.
    pub fn crash(self, sb: &mut Sandbox, id: &str) -> Crash {
        match self {
            Kind::Process => {
                // Broken until `fixed` exists; then it is the real engine (exec keeps the pid).
                let fixed = sb.path().join("fixed");
                let script = sb.write(
                    "bin/broken-engine",
                    &format!(
                        "#!/bin/sh\n[ -e '{}' ] && exec '{}'\necho 'broken-engine: cannot open the frobnicator (exit 1)' >&2\nexit 1\n",
                        fixed.display(),
                        wb_tests::engine_bin().display()
                    ),
                );
                std::fs::set_permissions(
                    &script,
                    std::os::unix::fs::PermissionsExt::from_mode(0o755),
                )
                .unwrap();
                sb.set("WB_ENGINE_BIN", script.display().to_string());
                Crash {
                    file: write_deployment(sb, id, "", ""),
                    exit: "the engine exited with code 1",
                    log: "broken-engine: cannot open the frobnicator",
                    repair: Repair::Touch(fixed),
                }
            }
            _ => Crash {
                file: write_deployment(sb, id, &format!(":IMAGE: {BROKEN_IMAGE}\n"), ""),
                exit: "exited with code 2",
                log: "invalid WB_BIND",
                repair: Repair::DefaultImage,
            },
        }
    }
}

enum Repair {
    Touch(PathBuf),
    DefaultImage,
}

/// An engine that fails at boot: the deployment file, what apply must say about the
/// exit, and a line of its log.
pub struct Crash {
    pub file: String,
    pub exit: &'static str,
    pub log: &'static str,
    repair: Repair,
}

impl Crash {
    /// Back to a working engine for the same deployment.
    pub fn repair(&self, sb: &Sandbox, id: &str) {
        match &self.repair {
            Repair::Touch(path) => std::fs::write(path, "").unwrap(),
            Repair::DefaultImage => {
                write_deployment(sb, id, "", "");
            }
        }
    }
}

/// podman in this kind of sandbox needs a containers.conf; a CI machine may bring its own.
pub fn containers_conf() -> String {
    std::env::var("CONTAINERS_CONF")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            wb_tests::repo_root()
                .join("tests/containers.conf")
                .display()
                .to_string()
        })
}

/// Whether a docker daemon answers `docker info` (within 10 s). When none does: a
/// failure under `WB_REQUIRE_TOOLS=1` (CI starts one: .ci/run), else a printed skip.
fn docker_daemon_answers() -> bool {
    if !wb_tests::require_tool("docker") {
        return false;
    }
    let mut child = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker runs");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let ok = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.success();
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if !ok {
        let why = "no docker daemon answers `docker info` — this test needs one; CI starts it (.ci/run) and sets WB_REQUIRE_TOOLS=1";
        if std::env::var("WB_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("{why}");
        }
        eprintln!("SKIPPED: {why}");
    }
    ok
}

/// The reference image built by the kit's own `engine image` with this backend's tool,
/// and the broken variant on top of it. Once per test process, and once per nextest run
/// across processes (a stamp holds the run id), under a lock so that concurrent test
/// processes never retag the image under each other.
fn images(kind: Kind) {
    static PODMAN: OnceLock<()> = OnceLock::new();
    static DOCKER: OnceLock<()> = OnceLock::new();
    let once = if kind == Kind::Podman {
        &PODMAN
    } else {
        &DOCKER
    };
    once.get_or_init(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| wb_tests::repo_root().join("target"));
        std::fs::create_dir_all(&target).unwrap();
        let lock = target.join(format!("wb-test-images-{}.lock", kind.name()));
        let stamp = target.join(format!("wb-test-images-{}.stamp", kind.name()));
        let run = std::env::var("NEXTEST_RUN_ID").ok();
        // flock(1) holds the lock while the build runs; the stamp is checked inside.
        let script = r#"
            if [ -n "$RUN_ID" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$RUN_ID" ]; then exit 0; fi
            "$KIT" engine image >&2 || exit 1
            dir=$(mktemp -d)
            printf 'FROM %s\nENV WB_BIND=not-an-ip\n' "$REFERENCE" > "$dir/Containerfile"
            "$TOOL" build -q -t "$BROKEN" -f "$dir/Containerfile" "$dir" >&2; rc=$?
            rm -rf "$dir"
            [ "$rc" -eq 0 ] || exit "$rc"
            [ -z "$RUN_ID" ] || printf '%s' "$RUN_ID" > "$STAMP"
        "#;
        let out = Command::new("flock")
            .arg(&lock)
            .args(["sh", "-c", script])
            .current_dir(wb_tests::repo_root())
            .env("KIT", wb_tests::kit_bin())
            .env("TOOL", kind.name())
            .env("STAMP", &stamp)
            .env("RUN_ID", run.unwrap_or_default())
            .env("REFERENCE", REFERENCE_IMAGE)
            .env("BROKEN", BROKEN_IMAGE)
            .env("WB_VMM_BACKEND", kind.name())
            .env("CONTAINERS_CONF", containers_conf())
            .stdin(Stdio::null())
            .output()
            .expect("flock runs");
        assert!(
            out.status.success(),
            "building the {} images failed:\n{}",
            kind.name(),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}
