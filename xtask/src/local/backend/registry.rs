//! The backend registry: the four kinds, the order they are tried in, and the one
//! `match` from a kind to its implementation.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Backend;
use crate::edge::Edge;

/// The local backends, in the order they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Docker,
    Podman,
    Krunvm,
    Process,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Docker, Kind::Podman, Kind::Krunvm, Kind::Process];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Docker => "docker",
            Kind::Podman => "podman",
            Kind::Krunvm => "krunvm",
            Kind::Process => "process",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == text)
    }

    /// The engine listens on the host itself (no port mapping): the port and pid in its
    /// discovery file are the host's.
    pub fn on_host(self) -> bool {
        matches!(self, Kind::Process)
    }

    /// Always available, so the last candidate: it never gives way to another.
    pub fn is_last_resort(self) -> bool {
        matches!(self, Kind::Process)
    }

    pub fn is_container(self) -> bool {
        matches!(self, Kind::Docker | Kind::Podman)
    }
}

/// The backend to use: `WB_VMM_BACKEND` if set (unknown → an error naming the four),
/// else the first that is available: docker (daemon reachable), podman, krunvm (on
/// PATH), process (always).
pub fn choose(edge: &Edge) -> Result<Kind, String> {
    Ok(candidates(edge, &[])?.0[0])
}

/// `WB_VMM_BACKEND`, parsed once: `Ok(None)` when unset.
pub fn forced(edge: &Edge) -> Result<Option<Kind>, String> {
    let Some(text) = edge
        .vars
        .get("WB_VMM_BACKEND")
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return Ok(None);
    };
    Kind::parse(text).map(Some).ok_or_else(|| {
        format!(
            "WB_VMM_BACKEND={text} is not a local backend — use one of: docker, podman, krunvm, process"
        )
    })
}

/// The backends to try, in order, and whether the user forced one. `WB_VMM_BACKEND`
/// gives exactly one; otherwise every available backend not in `exclude`, process last
/// (always available, never excluded).
pub fn candidates(edge: &Edge, exclude: &[Kind]) -> Result<(Vec<Kind>, bool), String> {
    if let Some(kind) = forced(edge)? {
        return Ok((vec![kind], true));
    }
    let mut kinds = Vec::new();
    if !exclude.contains(&Kind::Docker) && docker_reachable(edge) {
        kinds.push(Kind::Docker);
    }
    for kind in [Kind::Podman, Kind::Krunvm] {
        if !exclude.contains(&kind) && edge.vars.which(kind.name()).is_some() {
            kinds.push(kind);
        }
    }
    kinds.push(Kind::Process);
    Ok((kinds, false))
}

/// `docker info` answers within 3 s (a client with no daemon fails fast; a hung socket
/// must not hang the kit).
/// Asked once per kit process.
pub fn docker_reachable(edge: &Edge) -> bool {
    static REACHABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REACHABLE.get_or_init(|| {
        let Some(docker) = edge.vars.which("docker") else {
            return false;
        };
        let mut cmd = Command::new(docker);
        cmd.args(["info", "--format", "{{.ServerVersion}}"]);
        status_within(cmd, Duration::from_secs(3))
    })
}

/// Runs `cmd` with no I/O and says whether it succeeded within `limit` (killed if not).
pub fn status_within(mut cmd: Command, limit: Duration) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let Ok(mut child) = cmd.spawn() else {
        return false;
    };
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

pub fn for_kind(kind: Kind, edge: &Edge) -> Box<dyn Backend> {
    match kind {
        Kind::Docker | Kind::Podman => Box::new(super::container::Container::new(kind, edge)),
        Kind::Krunvm => Box::new(super::krunvm::Krunvm::new(edge)),
        Kind::Process => Box::new(super::process::Process::new(edge)),
    }
}
