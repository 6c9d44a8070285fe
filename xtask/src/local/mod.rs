//! The local place: backends (docker, podman, krunvm, process), discovery, verify.
//!
//! `apply` converges one deployment onto one backend ([`converge`]): clean up what a
//! dead run left, `ensure` the backend, compare the plan (and what `ensure` resolved)
//! with the last applied record, and only when something changed (or `--force`)
//! replace the running engine. It returns once the engine wrote its discovery file
//! (`disco/runtime.json`, polled up to 20 s) and answered `GET /health` with its token.
//! Nothing here prints: words go through the verb's [`Report`]; results are typed.
//! See docs/local.md.

pub mod backend;
mod converge;
pub mod health;
pub mod http;
pub mod rollback;
pub mod scale;

use std::path::PathBuf;
use std::time::Duration;

use self::backend::detached;
use self::backend::registry::{self, Kind};
use self::backend::{Instance, Presence, Spec};
use self::health::{TAIL, check_health, log_tail, read_runtime};
use crate::core::deployment::Deployment;
use crate::core::engine_env::engine_env;
use crate::core::secret::DeployEnv;
use crate::edge::Edge;
use crate::error::Error;
use crate::report::Report;
use crate::state::{self, Paths};

pub use self::converge::{Up, UpAction};

/// One `verify` request.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything a local verb works with, captured by the verb.
pub struct Local<'a> {
    pub d: &'a Deployment,
    pub deploy_env: &'a DeployEnv,
    pub paths: &'a Paths,
    pub edge: &'a Edge,
    pub report: &'a dyn Report,
    /// `--lock-wait`: how long a mutating verb waits for another run's lock.
    pub lock_wait: std::time::Duration,
}

/// Where a local deployment lives: what every local verb reports.
#[derive(Debug, Clone)]
pub struct Where {
    pub id: String,
    pub backend: Option<Kind>,
    pub discovery: PathBuf,
    pub data: PathBuf,
    pub log: PathBuf,
}

/// A local verb that failed: the error, and where (for `--json`).
#[derive(Debug, Clone)]
pub struct Failed {
    pub error: Error,
    pub at: Box<Where>,
    /// `verify` only: why the engine is not healthy, and its log's last lines.
    pub unhealthy: Option<Box<(String, Vec<String>)>>,
}

/// What `status` found.
#[derive(Debug, Clone)]
pub enum State {
    Down,
    Running { pid: Option<u32> },
    Stopped { why: String },
    Gone,
}

#[derive(Debug, Clone)]
pub struct Status {
    pub at: Where,
    pub inst: Option<Instance>,
    pub state: State,
    /// `SCALE` > 1: every instance (the fields above are instance 1's); else empty.
    pub instances: Vec<scale::Member>,
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Down => "down",
            State::Running { .. } => "running",
            State::Stopped { .. } => "stopped",
            State::Gone => "gone",
        }
    }
}

/// The description of an instance in one line (`podman, container wb-x, image …`).
pub fn describe(inst: &Instance, pid: Option<u32>) -> String {
    let mut parts = vec![inst.backend.name().to_string()];
    if let Some(c) = inst
        .container
        .as_ref()
        .filter(|_| inst.backend.is_container())
    {
        parts.push(format!("container {c}"));
    }
    if let Some(image) = inst.image.as_ref().filter(|_| inst.backend.is_container()) {
        parts.push(format!("image {image}"));
    }
    if let Some(pid) = pid.or(inst.pid).filter(|_| !inst.backend.is_container()) {
        parts.push(format!("pid {pid}"));
    }
    parts.join(", ")
}

impl<'a> Local<'a> {
    pub fn spec(&self) -> Spec {
        let mut spec = Spec::at(
            &self.paths.dir,
            &self.d.id,
            engine_env(self.d, self.deploy_env),
            self.d.port,
            &self.d.image,
        );
        spec.limits = self.d.size.map(|s| (s.memory_mb(), s.cpus()));
        spec
    }

    /// The spec the single-instance looks (`status`, `url`, `logs`) use: instance 1 of a
    /// scaled deployment, else the deployment's own.
    fn primary(&self) -> Spec {
        let top = self.spec();
        if self.d.scale > 1 {
            top.instance(1)
        } else {
            top
        }
    }

    fn at(&self, spec: &Spec, inst: Option<&Instance>) -> Where {
        Where {
            id: spec.id.clone(),
            backend: inst.map(|i| i.backend),
            discovery: spec.discovery(),
            data: spec.data.clone(),
            log: spec.log.clone(),
        }
    }

    fn fail(&self, spec: &Spec, inst: Option<&Instance>, error: impl Into<Error>) -> Failed {
        Failed {
            error: error.into(),
            at: Box::new(self.at(spec, inst)),
            unhealthy: None,
        }
    }

    /// A release of this deployment as applied now (numbered when appended).
    pub(crate) fn release(
        &self,
        applied: crate::core::plan::Applied,
        image_id: Option<String>,
        artifacts: std::collections::BTreeMap<String, String>,
    ) -> state::releases::Release {
        state::releases::Release::now(self.edge, self.d, applied, image_id, artifacts)
    }

    /// The deployment's lock (`local.lock`), for a mutating verb.
    pub(crate) fn lock(&self, spec: &Spec) -> Result<state::ApplyLock, String> {
        state::ApplyLock::acquire(&spec.dir.join("local.lock"), self.lock_wait, &|w| {
            self.report.warn(w)
        })
    }

    pub fn apply(&self, force: bool) -> Result<Up, Failed> {
        converge::apply(self, force)
    }

    pub fn down(&self) -> Result<(Where, bool), Failed> {
        let spec = self.spec();
        if !spec.dir.exists() {
            return Ok((self.at(&spec, None), false));
        }
        let lock = self.lock(&spec);
        let _lock = lock.map_err(|e| self.fail(&spec, None, e))?;
        let inst = Instance::load(&spec).or_else(|| self.unrecorded_container(&spec));
        let mut was_running = false;
        if let Some(inst) = &inst {
            let b = registry::for_kind(inst.backend, self.edge);
            was_running = matches!(b.status(&spec, inst), Presence::Running { .. });
            b.down(&spec, inst)
                .map_err(|e| self.fail(&spec, Some(inst), e))?;
        }
        converge::clear_instance(&spec);
        for n in scale::indices(&spec.dir) {
            let one = spec.instance(n);
            if let Some(inst) = Instance::load(&one) {
                let b = registry::for_kind(inst.backend, self.edge);
                was_running |= matches!(b.status(&one, &inst), Presence::Running { .. });
                b.down(&one, &inst)
                    .map_err(|e| self.fail(&one, Some(&inst), e))?;
            }
            converge::clear_instance(&one);
        }
        let _ = state::releases::stop(&spec.dir);
        Ok((self.at(&spec, inst.as_ref()), was_running))
    }

    /// With no record on disk, a container named `wb-<id>` of the current container
    /// backend is still ours (its name says so): `down` removes it.
    fn unrecorded_container(&self, spec: &Spec) -> Option<Instance> {
        let kind = registry::choose(self.edge)
            .ok()
            .filter(|k| k.is_container())?;
        let mut inst = Instance::new(kind, 0);
        inst.container = Some(spec.name());
        let present = registry::for_kind(kind, self.edge).status(spec, &inst) != Presence::Absent;
        present.then_some(inst)
    }

    pub fn status(&self) -> Status {
        let spec = self.primary();
        let inst = Instance::load(&spec);
        let state = match &inst {
            None => State::Down,
            Some(inst) => match registry::for_kind(inst.backend, self.edge).status(&spec, inst) {
                Presence::Running { pid } => State::Running { pid },
                Presence::Stopped { why } => State::Stopped { why },
                Presence::Absent => State::Gone,
            },
        };
        let instances = if self.d.scale > 1 {
            scale::members(self, &self.spec())
        } else {
            Vec::new()
        };
        Status {
            at: self.at(&spec, inst.as_ref()),
            inst,
            state,
            instances,
        }
    }

    /// The running instance, or why there is none.
    pub fn running(&self) -> Result<(Where, Instance, Option<u32>), Failed> {
        let spec = self.primary();
        let not = |why: String| {
            self.fail(
                &spec,
                None,
                format!("{why} — `{} apply` starts it", self.edge.program),
            )
        };
        let inst = Instance::load(&spec)
            .ok_or_else(|| not(format!("nothing is running for `{}`", spec.id)))?;
        match registry::for_kind(inst.backend, self.edge).status(&spec, &inst) {
            Presence::Running { pid } => Ok((self.at(&spec, Some(&inst)), inst, pid)),
            Presence::Stopped { why } => Err(not(format!("the engine is not running ({why})"))),
            Presence::Absent => Err(not("the engine is gone".into())),
        }
    }

    /// The engine's log: the log file (process, krunvm), the container's log (docker,
    /// podman).
    pub fn logs(&self) -> Result<(Where, String), Failed> {
        let spec = self.primary();
        let inst = Instance::load(&spec);
        let text = match &inst {
            Some(inst) => registry::for_kind(inst.backend, self.edge).logs(&spec, inst, None),
            None if spec.log.exists() => detached::read_log(&spec, None),
            None => Err(format!(
                "no engine log for `{}` — nothing has run since the last `down`, or ever",
                spec.id
            )),
        }
        .map_err(|e| self.fail(&spec, inst.as_ref(), e))?;
        Ok((self.at(&spec, inst.as_ref()), text))
    }

    /// Checks every instance (SCALE > 1: each of them, the first failure wins); the
    /// URL is instance 1's.
    pub fn verify(&self) -> Result<(Where, String), Failed> {
        if self.d.scale <= 1 {
            return self.verify_one(self.spec());
        }
        let top = self.spec();
        let mut first = None;
        for n in 1..=self.d.scale {
            let ok = self.verify_one(top.instance(n)).map_err(|mut f| {
                f.error = match f.error {
                    Error::Failed(m) => Error::Failed(format!("instance {n}: {m}")),
                    other => other,
                };
                f
            })?;
            first.get_or_insert(ok);
        }
        Ok(first.expect("SCALE > 1 has an instance 1"))
    }

    fn verify_one(&self, spec: Spec) -> Result<(Where, String), Failed> {
        let Some(inst) = Instance::load(&spec) else {
            let mut message = format!(
                "nothing is running for `{}` — `{} apply` starts it",
                spec.id, self.edge.program
            );
            if let Ok(text) = detached::read_log(&spec, Some(TAIL))
                && !text.trim().is_empty()
            {
                message.push_str("\nlast lines of the engine log:\n");
                message.extend(text.lines().map(|l| format!("  {l}\n")));
            }
            let mut failed = self.fail(&spec, None, message.trim_end());
            failed.unhealthy = Some(Box::new(("nothing is running".into(), Vec::new())));
            return Err(failed);
        };
        let b = registry::for_kind(inst.backend, self.edge);
        let url = inst.url();
        let problem = match read_runtime(&spec.discovery()) {
            None => {
                let shown = spec.discovery().display().to_string();
                match b.status(&spec, &inst) {
                    Presence::Running { .. } => {
                        format!("the engine is running but there is no discovery file at {shown}")
                    }
                    Presence::Stopped { why } => {
                        format!("the engine is not running ({why}); no discovery file at {shown}")
                    }
                    Presence::Absent => format!("the engine is gone; no discovery file at {shown}"),
                }
            }
            Some(rt) => match check_health(inst.port, &rt.token, VERIFY_TIMEOUT, &spec.discovery())
            {
                Ok(()) => return Ok((self.at(&spec, Some(&inst)), url)),
                Err(problem) => problem,
            },
        };
        let tail = log_tail(b.as_ref(), &spec, &inst);
        let mut failed = self.fail(
            &spec,
            Some(&inst),
            format!(
                "runtime not healthy — {url}/health: {problem}\nlast lines of the engine log:\n{}",
                tail.trim_end()
            ),
        );
        failed.unhealthy = Some(Box::new((
            problem,
            tail.lines().map(|l| l.trim_start().to_string()).collect(),
        )));
        Err(failed)
    }
}
