//! The `krunvm` backend: the image booted in a libkrun microVM (the macOS arm of the
//! seam). `krunvm create` makes the VM (`--workdir /app`: krunvm does not inherit the
//! image's WORKDIR; a free loopback port → the guest's PORT; data and discovery dirs as
//! volumes); `krunvm start` runs in the foreground, so the kit spawns it detached with a
//! pid file and a log, like the `process` backend.
//!
//! The runtime image boots via `eval` (its `start` wants a TTY the guest does not have):
//! start the app, then park; on failure halt with 1 so it surfaces in `logs`.
//!
//! krunvm takes the guest's environment only as `--env NAME=VALUE` arguments, so it
//! cannot deliver kit secrets without putting them in an argv: with any secret staged it
//! refuses and names docker and podman instead.
//!
//! Not exercised end to end here (no KVM/Hypervisor.framework in CI); the commands it
//! builds are unit-tested.

use std::process::Child;
use std::time::Duration;

use super::detached::{self, EnvMode};
use super::image::REFERENCE_IMAGE;
use super::{Backend, Failure, Instance, Kind, Parts, Presence, Spec};
use crate::core::engine_env::DATA_DIR;
use crate::edge::Edge;
use crate::report::Report;

/// The runtime release's boot: start the app without a console, then park forever.
pub const EVAL_BOOT: &str = "case Application.ensure_all_started(:workbooks) do {:ok, _} -> Process.sleep(:infinity); error -> IO.inspect(error, label: \"boot failed\"); System.halt(1) end";

pub struct Krunvm {
    edge: Edge,
    child: Option<Child>,
}

impl Krunvm {
    pub fn new(edge: &Edge) -> Krunvm {
        Krunvm {
            edge: edge.clone(),
            child: None,
        }
    }
}

/// Refuses a spec whose engine env carries secrets.
pub fn refuse_secrets(spec: &Spec) -> Result<(), String> {
    let names = spec.secret_names();
    if names.is_empty() {
        return Ok(());
    }
    Err(format!(
        "krunvm cannot deliver the kit's secrets ({}) — it passes the guest env only on its command line; use docker or podman (WB_VMM_BACKEND=podman) for a deployment with secrets",
        names.join(", ")
    ))
}

/// `krunvm create …` arguments.
pub fn create_args(spec: &Spec, port: u16) -> Vec<String> {
    vec![
        "create".into(),
        spec.image.clone(),
        "--name".into(),
        spec.name(),
        "--cpus".into(),
        "2".into(),
        "--mem".into(),
        "2048".into(),
        "--workdir".into(),
        "/app".into(),
        "--port".into(),
        format!("{port}:{}", spec.guest_port),
        "--volume".into(),
        format!("{}:{DATA_DIR}", spec.data.display()),
        "--volume".into(),
        format!("{}:/disco", spec.disco.display()),
    ]
}

/// `krunvm start …` arguments: the env as `--env NAME=VALUE` (refused when any value is
/// a secret), the VM name, then the boot command.
pub fn start_args(spec: &Spec) -> Result<Vec<String>, String> {
    refuse_secrets(spec)?;
    let mut args = vec!["start".to_string()];
    for (name, value) in &spec.env.0 {
        args.push("--env".into());
        // Plain values only (checked above): nothing secret reaches this argv.
        args.push(format!("{name}={value}"));
    }
    args.push(spec.name());
    if spec.image == REFERENCE_IMAGE || spec.image.contains("wb-engine") {
        args.push("/wb-engine".into());
    } else {
        args.extend(["/app/bin/workbooks".into(), "eval".into(), EVAL_BOOT.into()]);
    }
    Ok(args)
}

impl Backend for Krunvm {
    fn ensure(&mut self, _report: &dyn Report, spec: &Spec) -> Result<(), String> {
        refuse_secrets(spec)?;
        if self.edge.vars.which("krunvm").is_none() {
            return Err("krunvm is not on PATH — install it (macOS: `brew tap slp/krun && brew install krunvm`), or pick another backend with WB_VMM_BACKEND".into());
        }
        Ok(())
    }

    fn parts(&mut self, _report: &dyn Report, spec: &Spec) -> Result<Parts, String> {
        Ok(vec![("local:image".into(), spec.image.clone())])
    }

    fn create(&mut self, spec: &Spec, port: u16) -> Result<(), Failure> {
        let _ = duct::cmd("krunvm", ["delete", &spec.name()])
            .stdout_null()
            .stderr_null()
            .unchecked()
            .run();
        let out = duct::cmd("krunvm", create_args(spec, port))
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|e| format!("cannot run krunvm: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stdout));
        Err(Failure::Other(format!(
            "`krunvm create` failed: {}",
            text.trim()
        )))
    }

    fn run(&mut self, _report: &dyn Report, spec: &Spec, port: u16) -> Result<Instance, Failure> {
        let args = start_args(spec)?;
        let (child, started) =
            detached::spawn(spec, "krunvm".as_ref(), &args, &[], EnvMode::Inherit)?;
        let mut inst = Instance::new(Kind::Krunvm, port);
        inst.pid = Some(child.id());
        inst.started = started;
        inst.container = Some(spec.name());
        inst.image = Some(spec.image.clone());
        self.child = Some(child);
        Ok(inst)
    }

    fn status(&self, _spec: &Spec, inst: &Instance) -> Presence {
        detached::presence(inst, "krunvm process")
    }

    fn down(&self, spec: &Spec, inst: &Instance) -> Result<(), String> {
        if let Some(pid) = inst.pid {
            detached::terminate(pid, inst.started, Duration::from_secs(5));
        }
        let _ = std::fs::remove_file(&spec.pid_file);
        let _ = duct::cmd("krunvm", ["delete", &spec.name()])
            .stdout_null()
            .stderr_null()
            .unchecked()
            .run();
        Ok(())
    }

    fn logs(&self, spec: &Spec, _inst: &Instance, tail: Option<usize>) -> Result<String, String> {
        detached::read_log(spec, tail)
    }

    fn exited(&mut self, spec: &Spec, inst: &Instance) -> Option<String> {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => Some(format!("krunvm exited ({status})")),
            Some(Ok(None)) => None,
            _ => super::gone(self.status(spec, inst)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(secret: bool) -> Spec {
        super::super::test_spec("vm", secret.then_some("canary-vm"))
    }

    #[test]
    fn create_has_workdir_port_and_volumes() {
        let args = create_args(&spec(false), 55123).join(" ");
        assert_eq!(
            args,
            "create ghcr.io/workbooks-sh/runtime:latest --name wb-vm --cpus 2 --mem 2048 --workdir /app --port 55123:4000 --volume /st/vm/data:/data --volume /st/vm/disco:/disco"
        );
    }

    #[test]
    fn start_boots_via_eval_with_plain_env() {
        let args = start_args(&spec(false)).unwrap();
        assert_eq!(args[0], "start");
        assert!(args.windows(2).any(|w| w == ["--env", "WB_WEB=1"]));
        assert!(args.windows(2).any(|w| w == ["--env", "WB_DATA=/data"]));
        let name = args.iter().position(|a| a == "wb-vm").unwrap();
        assert_eq!(&args[name + 1..name + 3], ["/app/bin/workbooks", "eval"]);
        assert!(args[name + 3].contains("Process.sleep(:infinity)"));
    }

    #[test]
    fn secrets_are_refused_naming_docker_and_podman() {
        let err = start_args(&spec(true)).unwrap_err();
        assert!(err.contains("docker") && err.contains("podman"), "{err}");
        assert!(err.contains("CANARY_SECRET"), "{err}");
        assert!(!err.contains("canary-vm"), "{err}");
    }
}
