//! The backend seam: one small trait (ensure → create → run → status → down), the four
//! kinds, how one is chosen, and what every backend shares: the deployment's local
//! [`Spec`], the [`Instance`] record on disk, free loopback ports.
//!
//! A new backend is a new file implementing [`Backend`] plus one line in
//! [`registry`]; nothing outside the registry switches on the backend kind.

pub mod container;
pub mod detached;
pub mod image;
pub mod krunvm;
pub mod process;
pub mod registry;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

pub use self::registry::Kind;
use crate::core::engine_env::EngineEnv;
use crate::report::Report;
use crate::state;

/// Everything a backend needs to know about one local deployment.
#[derive(Debug, Clone)]
pub struct Spec {
    pub id: String,
    /// The deployment's state directory.
    pub dir: PathBuf,
    pub data: PathBuf,
    pub disco: PathBuf,
    /// The engine's log (process and krunvm; containers keep theirs in the engine tool).
    pub log: PathBuf,
    pub pid_file: PathBuf,
    /// The engine env (SPEC §5): the container view, `/data` and all.
    pub env: EngineEnv,
    /// The port the engine listens on inside a container or VM (the deployment's PORT).
    pub guest_port: u16,
    /// The deployment's IMAGE.
    pub image: String,
    /// With `SCALE` > 1: which instance (from 1) this spec runs, in its own
    /// `instances/<n>/` beside the shared `data/`.
    pub index: Option<u16>,
    /// `SIZE` as (memory in MB, CPUs): `--memory`/`--cpus` for docker and podman.
    pub limits: Option<(u32, u32)>,
}

impl Spec {
    pub fn at(dir: &Path, id: &str, env: EngineEnv, guest_port: u16, image: &str) -> Spec {
        Spec {
            id: id.to_string(),
            dir: dir.to_path_buf(),
            data: dir.join("data"),
            disco: dir.join("disco"),
            log: dir.join("engine.log"),
            pid_file: dir.join("engine.pid"),
            env,
            guest_port,
            image: image.to_string(),
            index: None,
            limits: None,
        }
    }

    /// Instance `n` (from 1) of a scaled deployment (SPEC §18 "Local SCALE"): its own
    /// `instances/<n>/{disco,engine.pid,engine.log,instance.json}`, the shared `data/`.
    pub fn instance(&self, n: u16) -> Spec {
        let slot = self.dir.join("instances").join(n.to_string());
        Spec {
            id: self.id.clone(),
            data: self.data.clone(),
            disco: slot.join("disco"),
            log: slot.join("engine.log"),
            pid_file: slot.join("engine.pid"),
            env: self.env.clone(),
            guest_port: self.guest_port,
            image: self.image.clone(),
            index: Some(n),
            limits: self.limits,
            dir: slot,
        }
    }

    /// The container / VM name: `wb-<id>`, or `wb-<id>.<n>` for instance `n` (IDs
    /// cannot contain `.`).
    pub fn name(&self) -> String {
        match self.index {
            Some(n) => format!("wb-{}.{n}", self.id),
            None => format!("wb-{}", self.id),
        }
    }

    /// The discovery file the engine writes.
    pub fn discovery(&self) -> PathBuf {
        self.disco.join("runtime.json")
    }

    pub fn instance_file(&self) -> PathBuf {
        self.dir.join("instance.json")
    }

    /// Names of the engine env that carry secret values.
    pub fn secret_names(&self) -> Vec<&str> {
        self.env
            .0
            .iter()
            .filter(|(_, v)| v.is_secret())
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

/// What was started, as recorded in `instance.json`: enough for `status`, `logs`,
/// `verify` and `down` to find it again from another kit process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub backend: Kind,
    /// The loopback port the URL uses.
    pub port: u16,
    /// The spawned process (process, krunvm), also in the pid file.
    pub pid: Option<u32>,
    /// Its start time (Linux `/proc/<pid>/stat` field 22) so a recycled pid is not
    /// mistaken for it.
    pub started: Option<u64>,
    /// The container name (docker, podman).
    pub container: Option<String>,
    /// The image actually run (containers, krunvm).
    pub image: Option<String>,
}

impl Instance {
    pub fn new(backend: Kind, port: u16) -> Instance {
        Instance {
            backend,
            port,
            pid: None,
            started: None,
            container: None,
            image: None,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "backend": self.backend.name(),
            "port": self.port,
            "pid": self.pid,
            "started": self.started,
            "container": self.container,
            "image": self.image,
        })
    }

    pub fn from_json(v: &Value) -> Option<Instance> {
        Some(Instance {
            backend: Kind::parse(v.get("backend")?.as_str()?)?,
            port: u16::try_from(v.get("port")?.as_u64()?).ok()?,
            pid: v
                .get("pid")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok()),
            started: v.get("started").and_then(Value::as_u64),
            container: v.get("container").and_then(Value::as_str).map(String::from),
            image: v.get("image").and_then(Value::as_str).map(String::from),
        })
    }

    pub fn load(spec: &Spec) -> Option<Instance> {
        let text = std::fs::read_to_string(spec.instance_file()).ok()?;
        Instance::from_json(&serde_json::from_str(&text).ok()?)
    }

    pub fn save(&self, spec: &Spec) -> Result<(), String> {
        state::atomic_write(
            &spec.instance_file(),
            format!("{:#}\n", self.to_json()).as_bytes(),
            0o600,
        )
    }

    pub fn forget(spec: &Spec) {
        let _ = std::fs::remove_file(spec.instance_file());
    }
}

/// Whether an instance is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    Running {
        pid: Option<u32>,
    },
    /// It exists but is not running (an exited container, a dead pid): `why` says so.
    Stopped {
        why: String,
    },
    Absent,
}

/// A failed create/run/start-up: a lost port race is retried on another port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    PortTaken(String),
    Other(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Failure {
        Failure::Other(s)
    }
}

/// Fingerprint parts a backend adds to the intended deployment's (the resolved image,
/// the engine binary): when one changes, `apply` replaces the running engine.
pub type Parts = Vec<(String, String)>;

/// One way to run the engine locally.
pub trait Backend {
    /// Prerequisites: the tool is there, the image or engine binary exists (built on
    /// demand), the backend can deliver this env.
    fn ensure(&mut self, report: &dyn Report, spec: &Spec) -> Result<(), String>;
    /// What `ensure` resolved, as fingerprint parts (the image and its id, the engine
    /// binary): when one changes, `apply` replaces the running engine.
    fn parts(&mut self, report: &dyn Report, spec: &Spec) -> Result<Parts, String>;
    /// A fresh instance that will serve on loopback `port`; not started yet.
    fn create(&mut self, spec: &Spec, port: u16) -> Result<(), Failure>;
    /// Starts what `create` made.
    fn run(&mut self, report: &dyn Report, spec: &Spec, port: u16) -> Result<Instance, Failure>;
    /// Where the instance is (read-only).
    fn status(&self, spec: &Spec, inst: &Instance) -> Presence;
    /// Stops and removes the instance; the data dir stays. Absent is fine.
    fn down(&self, spec: &Spec, inst: &Instance) -> Result<(), String>;
    /// Stops a failed start-up but keeps what `logs` needs (default: [`Backend::down`],
    /// as a log file outlives its process).
    fn stop(&self, spec: &Spec, inst: &Instance) -> Result<(), String> {
        self.down(spec, inst)
    }
    /// The engine's log, the last `tail` lines (all with `None`).
    fn logs(&self, spec: &Spec, inst: &Instance, tail: Option<usize>) -> Result<String, String>;
    /// While waiting for start-up: `Some(why)` once the engine is gone. Called every few
    /// hundred milliseconds; the default asks [`Backend::status`].
    fn exited(&mut self, spec: &Spec, inst: &Instance) -> Option<String> {
        gone(self.status(spec, inst))
    }
}

/// Why an engine is gone, from its presence (`None` while it runs).
pub fn gone(presence: Presence) -> Option<String> {
    match presence {
        Presence::Running { .. } => None,
        Presence::Stopped { why } => Some(why),
        Presence::Absent => Some("it is gone".into()),
    }
}

/// A free loopback port: `preferred` if it can be bound now, else one the OS picks.
pub fn free_port(preferred: Option<u16>, avoid: &[u16]) -> Result<u16, String> {
    use std::net::TcpListener;
    if let Some(p) = preferred.filter(|p| *p != 0 && !avoid.contains(p))
        && TcpListener::bind(("127.0.0.1", p)).is_ok()
    {
        return Ok(p);
    }
    for _ in 0..16 {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .map_err(|e| format!("cannot find a free loopback port: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("cannot find a free loopback port: {e}"))?
            .port();
        if !avoid.contains(&port) {
            return Ok(port);
        }
    }
    Err("cannot find a free loopback port".into())
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    let mut out = lines[start..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// Whether a start-up log (or a tool's error) says the port was taken.
pub fn says_port_taken(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("address already in use")
        || t.contains("port is already allocated")
        || t.contains("os error 98")
        || t.contains("addrinuse")
}

/// A spec for unit tests: a local deployment `id` whose engine env carries the secret
/// `CANARY_SECRET` with `canary` as its value (when given).
#[cfg(test)]
pub fn test_spec(id: &str, canary: Option<&str>) -> Spec {
    use crate::core::deployment::{DEFAULT_IMAGE, Deployment, Place};
    use crate::core::secret::{DeployEnv, Secret};
    let mut d = Deployment::new(id, Place::Local);
    let mut store = Vec::new();
    if let Some(value) = canary {
        d.secrets = vec!["CANARY_SECRET".into()];
        store.push(("CANARY_SECRET".to_string(), Secret::new(value)));
    }
    let env = crate::core::engine_env::engine_env(&d, &DeployEnv::new(std::iter::empty(), store));
    Spec::at(
        &std::path::Path::new("/st").join(id),
        id,
        env,
        4000,
        DEFAULT_IMAGE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_keep_their_order() {
        let names: Vec<_> = Kind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names, ["docker", "podman", "krunvm", "process"]);
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.name()), Some(k));
        }
        assert_eq!(Kind::parse("qemu"), None);
    }

    #[test]
    fn instance_record_round_trips() {
        let mut i = Instance::new(Kind::Process, 41234);
        i.pid = Some(77);
        i.started = Some(123456);
        assert_eq!(Instance::from_json(&i.to_json()), Some(i.clone()));
        let mut c = Instance::new(Kind::Podman, 5000);
        c.container = Some("wb-x".into());
        c.image = Some("localhost/wb-engine:dev".into());
        assert_eq!(Instance::from_json(&c.to_json()), Some(c));
    }

    #[test]
    fn a_taken_preferred_port_is_replaced() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = held.local_addr().unwrap().port();
        let got = free_port(Some(taken), &[]).unwrap();
        assert_ne!(got, taken);
        let free = free_port(None, &[]).unwrap();
        assert_eq!(free_port(Some(free), &[]).unwrap(), free);
        assert_ne!(free_port(Some(free), &[free]).unwrap(), free);
    }

    #[test]
    fn port_taken_messages_are_recognized() {
        assert!(says_port_taken(
            "wb-engine: cannot listen on 127.0.0.1:4000: Address already in use (os error 98)"
        ));
        assert!(says_port_taken(
            "Error: cannot listen on the TCP port: listen tcp4 127.0.0.1:45679: bind: address already in use"
        ));
        assert!(says_port_taken(
            "Bind for 127.0.0.1:4000 failed: port is already allocated"
        ));
        assert!(!says_port_taken("wb-engine: cannot open WB_REGISTRY"));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail("", 2), "");
    }
}
