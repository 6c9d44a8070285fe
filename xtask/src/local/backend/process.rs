//! The `process` backend: the engine binary as a detached local process.
//!
//! The binary is `WB_ENGINE_BIN`, else the workspace's reference engine, built on demand
//! (`cargo build -p wb-engine`). Its environment is exactly the engine env (SPEC §5) plus
//! `PATH`, with the container paths mapped into the host state dir: `WB_DATA` and
//! `WB_REGISTRY` under `data/`, `WB_DISCO` at `disco/`, `PORT` the kit's free loopback
//! port and `WB_BIND=127.0.0.1`.

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use super::detached::{self, EnvMode};
use super::{Backend, Failure, Instance, Kind, Parts, Presence, Spec};
use crate::core::engine_env::{DATA_DIR, EnvValue};
use crate::edge::Edge;
use crate::report::Report;

pub struct Process {
    edge: Edge,
    engine: Option<PathBuf>,
    parts: Parts,
    child: Option<Child>,
}

/// The engine env for a host process: the container view with its paths and port
/// mapped onto the host. Values stay [`EnvValue`]s (secrets redacted) until the spawn.
pub fn host_env(spec: &Spec, port: u16) -> Vec<(String, EnvValue)> {
    let data = spec.data.display().to_string();
    let host_path = |value: &str| match value.strip_prefix(DATA_DIR) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{data}{rest}"),
        _ => value.to_string(),
    };
    let mut env: Vec<(String, EnvValue)> = spec
        .env
        .0
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "WB_DISCO" | "WB_BIND"))
        .map(|(name, value)| {
            let value = match (name.as_str(), value) {
                ("PORT", _) => EnvValue::Plain(port.to_string()),
                ("WB_DATA" | "WB_REGISTRY", EnvValue::Plain(v)) => EnvValue::Plain(host_path(v)),
                _ => value.clone(),
            };
            (name.clone(), value)
        })
        .collect();
    env.push((
        "WB_DISCO".into(),
        EnvValue::Plain(spec.disco.display().to_string()),
    ));
    env.push(("WB_BIND".into(), EnvValue::Plain("127.0.0.1".into())));
    env
}

impl Process {
    pub fn new(edge: &Edge) -> Process {
        Process {
            edge: edge.clone(),
            engine: None,
            parts: Parts::default(),
            child: None,
        }
    }
}

impl Backend for Process {
    fn ensure(&mut self, report: &dyn Report, _spec: &Spec) -> Result<(), String> {
        let engine = match self.edge.vars.os("WB_ENGINE_BIN") {
            Some(path) => {
                let path = PathBuf::from(path);
                if !path.is_file() {
                    return Err(format!(
                        "WB_ENGINE_BIN={} is not a file — point it at a wb-engine binary, or unset it to build the workspace's",
                        path.display()
                    ));
                }
                path
            }
            None => super::image::find_engine(&self.edge, report)?,
        };
        let meta = std::fs::metadata(&engine)
            .map_err(|e| format!("cannot read {}: {e}", engine.display()))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let part = format!("{} {} {mtime}", engine.display(), meta.len());
        self.engine = Some(engine);
        self.parts = vec![("local:engine".into(), part)];
        Ok(())
    }

    fn parts(&mut self, _report: &dyn Report, _spec: &Spec) -> Result<Parts, String> {
        Ok(self.parts.clone())
    }

    fn create(&mut self, _spec: &Spec, _port: u16) -> Result<(), Failure> {
        Ok(())
    }

    fn run(&mut self, _report: &dyn Report, spec: &Spec, port: u16) -> Result<Instance, Failure> {
        let engine = self.engine.clone().expect("ensure ran");
        let mut env: Vec<(String, String)> = host_env(spec, port)
            .into_iter()
            .map(|(n, v)| (n, v.expose().to_string()))
            .collect();
        if let Some(path) = self.edge.vars.get("PATH") {
            env.push(("PATH".into(), path.to_string()));
        }
        let (child, started) = detached::spawn(spec, engine.as_os_str(), &[], &env, EnvMode::Only)?;
        let mut inst = Instance::new(Kind::Process, port);
        inst.pid = Some(child.id());
        inst.started = started;
        self.child = Some(child);
        Ok(inst)
    }

    fn status(&self, _spec: &Spec, inst: &Instance) -> Presence {
        detached::presence(inst, "engine process")
    }

    fn down(&self, spec: &Spec, inst: &Instance) -> Result<(), String> {
        if let Some(pid) = inst.pid {
            detached::terminate(pid, inst.started, Duration::from_secs(5));
            if detached::alive(pid, inst.started) {
                return Err(format!("engine process {pid} would not stop"));
            }
        }
        let _ = std::fs::remove_file(&spec.pid_file);
        Ok(())
    }

    fn logs(&self, spec: &Spec, _inst: &Instance, tail: Option<usize>) -> Result<String, String> {
        detached::read_log(spec, tail)
    }

    fn exited(&mut self, spec: &Spec, inst: &Instance) -> Option<String> {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => Some(match status.code() {
                Some(code) => format!("the engine exited with code {code}"),
                None => format!("the engine was killed ({status})"),
            }),
            Some(Ok(None)) => None,
            _ => super::gone(self.status(spec, inst)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_env_maps_the_container_view_onto_the_state_dir() {
        let spec = super::super::test_spec("t", Some("canary-xyz"));
        let env = host_env(&spec, 41000);
        let get = |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.to_string());
        assert_eq!(get("PORT").as_deref(), Some("41000"));
        assert_eq!(get("WB_DATA").as_deref(), Some("/st/t/data"));
        assert_eq!(
            get("WB_REGISTRY").as_deref(),
            Some("/st/t/data/registry.db")
        );
        assert_eq!(get("WB_DISCO").as_deref(), Some("/st/t/disco"));
        assert_eq!(get("WB_BIND").as_deref(), Some("127.0.0.1"));
        assert_eq!(get("WB_WEB").as_deref(), Some("1"));
        // The secret rides along, still redacted until the spawn exposes it.
        assert_eq!(get("CANARY_SECRET").as_deref(), Some("<redacted>"));
        let secret = env.iter().find(|(k, _)| k == "CANARY_SECRET").unwrap();
        assert_eq!(secret.1.expose(), "canary-xyz");
    }
}
