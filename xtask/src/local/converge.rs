//! `apply` for the local place: a loop over backend candidates. An auto-chosen backend
//! that cannot start the engine (podman installed but unable to run containers, say)
//! gives way to the next one, with a warning naming how to insist on it; a forced one
//! (`WB_VMM_BACKEND`) never does.

use std::time::{Duration, Instant};

use super::backend::registry::{self, Kind};
use super::backend::{Backend, Failure, Instance, Presence, Spec, detached};
use super::health::{self, check_health, indent_log, last_words, read_runtime, with_tail};
use super::{Failed, Local, describe};
use crate::core::plan::{self, Applied, Fingerprint};
use crate::error::Error;
use crate::providers::spawn;
use crate::state;

/// How long the kit waits for the engine's discovery file (SPEC §9.2).
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(20);
/// After discovery, how long the engine has to answer `/health` with 200.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpAction {
    Created,
    Replaced,
    Unchanged,
}

impl UpAction {
    pub fn as_str(self) -> &'static str {
        match self {
            UpAction::Created => "created",
            UpAction::Replaced => "replaced",
            UpAction::Unchanged => "unchanged",
        }
    }
}

/// What `apply` left running.
#[derive(Debug, Clone)]
pub struct Up {
    pub at: super::Where,
    pub inst: Instance,
    pub pid: Option<u32>,
    pub action: UpAction,
    /// What changed, in words (empty when unchanged).
    pub changes: Vec<String>,
}

/// What one attempt on one backend came to.
enum Attempt {
    Done(Box<Up>),
    /// The backend could not start the engine; the next candidate may.
    GiveWay(String),
}

pub fn apply(local: &Local, force: bool) -> Result<Up, Failed> {
    // A SIGINT/SIGTERM from here on is noticed: a half-started engine is stopped and
    // the interruption reported (exit 130/143, one JSON error object).
    spawn::catch_signals();
    if local.d.scale > 1 {
        return super::scale::apply(local, force);
    }
    let spec = local.spec();
    let fail = |e: String| local.fail(&spec, None, e);
    for sub in [&spec.dir, &spec.data, &spec.disco] {
        state::ensure_private_dir(sub).map_err(fail)?;
    }
    let _lock = local.lock(&spec).map_err(fail)?;
    state::sweep_temp_files(&spec.dir);
    super::scale::retire(local, &spec, 1).map_err(fail)?;
    let (mut candidates, forced) = registry::candidates(local.edge, &[]).map_err(fail)?;
    let live = settle_previous(local, &spec).map_err(fail)?;
    // A running engine keeps its backend unless the user forces another: re-applying
    // after a fallback must not switch backends under it.
    if let Some(prev) = &live
        && let Some(i) = candidates.iter().position(|k| *k == prev.backend)
    {
        let kept = candidates.remove(i);
        candidates.insert(0, kept);
    }
    let last = candidates.len() - 1;
    for (i, kind) in candidates.into_iter().enumerate() {
        let may_give_way = !forced && i < last;
        match attempt(local, &spec, kind, live.as_ref(), force, may_give_way)? {
            Attempt::Done(up) => return Ok(*up),
            Attempt::GiveWay(why) => local.report.warn(&format!(
                "{} {why}\n  trying the next backend; WB_VMM_BACKEND={} insists on it",
                kind.name(),
                kind.name()
            )),
        }
    }
    unreachable!("the process backend never gives way")
}

/// What is there now: a dead run is cleaned up; a live one may stay.
fn settle_previous(local: &Local, spec: &Spec) -> Result<Option<Instance>, String> {
    let Some(prev) = Instance::load(spec) else {
        clean_orphan_files(local, spec);
        return Ok(None);
    };
    let old = registry::for_kind(prev.backend, local.edge);
    match old.status(spec, &prev) {
        Presence::Running { .. } => Ok(Some(prev)),
        Presence::Stopped { why } => {
            local.report.info(&format!(
                "cleaning up after a run that died ({why}): stale {} removed",
                if prev.backend.is_container() {
                    "container and discovery file"
                } else {
                    "pid file and discovery file"
                }
            ));
            old.down(spec, &prev)?;
            clear_instance(spec);
            Ok(None)
        }
        Presence::Absent => {
            local.report.info(&format!(
                "cleaning up: the recorded {} engine is gone",
                prev.backend.name()
            ));
            clear_instance(spec);
            Ok(None)
        }
    }
}

/// One backend: ensure it, compare with the record, keep or replace, bring up.
fn attempt(
    local: &Local,
    spec: &Spec,
    kind: Kind,
    live: Option<&Instance>,
    force: bool,
    may_give_way: bool,
) -> Result<Attempt, Failed> {
    let fail = |e: String| local.fail(spec, None, e);
    let mut backend = registry::for_kind(kind, local.edge);
    if let Err(why) = backend.ensure(local.report, spec) {
        if may_give_way {
            return Ok(Attempt::GiveWay(format!("is not usable ({why}) —")));
        }
        return Err(fail(why));
    }
    let salt = state::salt(&spec.dir).map_err(fail)?;
    let intended = plan::Intended::new(local.d, local.deploy_env, None, &[], false);
    let before = state::last_applied(&spec.dir);
    let plan = plan::plan(
        local.d,
        &intended,
        before.as_ref().map(|b| (b, salt.as_slice())),
    )
    .after_down(state::releases::is_stopped(&spec.dir));
    let (resolved, raw) = resolved(local, backend.as_mut(), spec, kind, &salt).map_err(fail)?;
    let record = Applied {
        intended: intended.fingerprint(local.d, &salt),
        resolved,
    };
    let mut action = UpAction::Created;
    let mut changes = plan.lines();
    if let Some(prev) = live {
        let mut why = plan.lines();
        let before_resolved = before.map(|b| b.resolved).unwrap_or_default();
        why.extend(
            record
                .resolved
                .diff(&before_resolved)
                .iter()
                .map(ToString::to_string),
        );
        if let Some(up) = keep(local, spec, prev, kind, &why, force).map_err(fail)? {
            return Ok(Attempt::Done(Box::new(up)));
        }
        action = UpAction::Replaced;
        changes = why;
    }
    let _ = state::forget_applied(&spec.dir);
    let preferred = live.map(|i| i.port).or_else(|| read_port(spec));
    let (inst, pid) = match bring_up(local, backend.as_mut(), spec, preferred) {
        Ok(up) => up,
        Err(why) if spawn::interrupted() => {
            let error = Error::Interrupted {
                code: spawn::interrupted_code(),
                message: why,
            };
            return Err(local.fail(spec, None, error));
        }
        Err(why) if may_give_way && !kind.is_last_resort() => {
            return Ok(Attempt::GiveWay(format!(
                "could not start the engine: {why}"
            )));
        }
        Err(why) => {
            let mut failed = fail(why);
            failed.at.backend = Some(kind);
            return Err(failed);
        }
    };
    let release = local.release(record, image_id(kind, &raw), Default::default());
    state::releases::append(&spec.dir, release).map_err(fail)?;
    let _ = state::atomic_write(
        &spec.dir.join("port"),
        format!("{}\n", inst.port).as_bytes(),
        0o600,
    );
    local.report.good(&format!(
        "runtime up — {} ({})",
        inst.url(),
        describe(&inst, pid)
    ));
    Ok(Attempt::Done(Box::new(Up {
        at: local.at(spec, Some(&inst)),
        inst,
        pid,
        action,
        changes,
    })))
}

/// A live engine that is as last applied (same backend, nothing changed, healthy, no
/// `--force`) is kept: `Some`. Otherwise it is stopped for its replacement: `None`.
fn keep(
    local: &Local,
    spec: &Spec,
    prev: &Instance,
    kind: Kind,
    why: &[String],
    force: bool,
) -> Result<Option<Up>, String> {
    let health = current_health(spec, prev);
    if prev.backend == kind && why.is_empty() && !force && health.is_ok() {
        local.report.good(&format!(
            "runtime up — {} ({}; unchanged since the last apply — nothing touched)",
            prev.url(),
            describe(prev, None)
        ));
        return Ok(Some(Up {
            at: local.at(spec, Some(prev)),
            inst: prev.clone(),
            pid: prev.pid,
            action: UpAction::Unchanged,
            changes: Vec::new(),
        }));
    }
    let reason = replace_reason(force, health, prev.backend, kind, why);
    local.report.info(&format!(
        "replacing the running engine ({}) — {reason}",
        describe(prev, None)
    ));
    registry::for_kind(prev.backend, local.edge).down(spec, prev)?;
    clear_instance(spec);
    Ok(None)
}

/// What the backend resolved (backend, image id, engine binary), hashed with the salt,
/// and the same parts unhashed (image IDs and paths: what a release records).
pub(super) fn resolved(
    local: &Local,
    backend: &mut dyn Backend,
    spec: &Spec,
    kind: Kind,
    salt: &[u8],
) -> Result<(Fingerprint, Vec<(String, String)>), String> {
    let mut f = Fingerprint::default();
    f.put("backend", kind.name(), salt);
    let raw = backend.parts(local.report, spec)?;
    for (part, value) in &raw {
        f.put(part.clone(), value, salt);
    }
    Ok((f, raw))
}

/// What a release records as the image's identity: a container backend's image ID; the
/// process backend's engine binary as `<path> sha256:<hex>` (rollback refuses when the
/// binary's digest changed).
pub(super) fn image_id(kind: Kind, raw: &[(String, String)]) -> Option<String> {
    let value = |name: &str| raw.iter().find(|(p, _)| p == name).map(|(_, v)| v.as_str());
    if kind == Kind::Process {
        let part = value("local:engine")?;
        let path = part.rsplitn(3, ' ').nth(2)?;
        return Some(format!(
            "{path} {}",
            file_sha256(std::path::Path::new(path))?
        ));
    }
    value("local:image")
        .and_then(|v| v.rsplit_once('@'))
        .map(|(_, id)| id.to_string())
}

/// `sha256:<hex>` of a file's bytes.
pub fn file_sha256(path: &std::path::Path) -> Option<String> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).ok()?;
    Some(format!("sha256:{}", plan::hex(&Sha256::digest(&bytes))))
}

pub(super) fn current_health(spec: &Spec, prev: &Instance) -> Result<(), String> {
    read_runtime(&spec.discovery())
        .ok_or_else(|| "no discovery file".to_string())
        .and_then(|rt| {
            check_health(
                prev.port,
                &rt.token,
                Duration::from_secs(2),
                &spec.discovery(),
            )
        })
}

fn replace_reason(
    force: bool,
    health: Result<(), String>,
    was: Kind,
    now: Kind,
    why: &[String],
) -> String {
    if force {
        "--force".to_string()
    } else if let Err(problem) = health {
        format!("it is not healthy: {problem}")
    } else if was != now {
        format!("backend {} → {}", was.name(), now.name())
    } else if why.is_empty() {
        "no record of the last apply".to_string()
    } else {
        why.join(", ")
    }
}

pub(super) fn read_port(spec: &Spec) -> Option<u16> {
    std::fs::read_to_string(spec.dir.join("port"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Forgets the instance record and the files only a live engine should leave.
pub fn clear_instance(spec: &Spec) {
    Instance::forget(spec);
    let _ = std::fs::remove_file(spec.discovery());
    let _ = std::fs::remove_file(&spec.pid_file);
}

/// No instance record, yet a pid file or a discovery file: left by a kit or engine that
/// died mid-way. A pid file whose process is gone, and any discovery file, are removed.
fn clean_orphan_files(local: &Local, spec: &Spec) {
    if let Some(pid) = detached::read_pid(spec) {
        if detached::alive(pid, None) {
            local.report.warn(&format!(
                "{} names process {pid}, which is running but not recorded by the kit — leaving it alone",
                spec.pid_file.display()
            ));
        } else {
            local
                .report
                .info(&format!("removed a stale pid file (process {pid} is gone)"));
            let _ = std::fs::remove_file(&spec.pid_file);
        }
    }
    if spec.discovery().exists() {
        local.report.info("removed a stale discovery file");
        let _ = std::fs::remove_file(spec.discovery());
    }
}

/// Starts the engine on a free loopback port and waits until it is healthy; a port
/// lost to a race is retried on another (three tries).
pub(super) fn bring_up(
    local: &Local,
    backend: &mut dyn Backend,
    spec: &Spec,
    preferred: Option<u16>,
) -> Result<(Instance, Option<u32>), String> {
    let mut tried = Vec::new();
    let mut last = String::new();
    for attempt in 0..3 {
        let port = super::backend::free_port(if attempt == 0 { preferred } else { None }, &tried)?;
        if attempt == 0
            && let Some(p) = preferred
            && p != port
        {
            local.report.info(&format!(
                "port {p} (used last time) is taken — using {port}"
            ));
        }
        tried.push(port);
        let _ = std::fs::remove_file(spec.discovery());
        let step = backend
            .create(spec, port)
            .and_then(|()| backend.run(local.report, spec, port));
        let mut inst = match step {
            Ok(inst) => inst,
            Err(Failure::PortTaken(why)) => {
                local
                    .report
                    .info(&format!("port {port} was taken meanwhile — trying another"));
                last = why;
                continue;
            }
            Err(Failure::Other(why)) => return Err(why),
        };
        inst.save(spec)?;
        if spawn::interrupted() {
            return Err(interrupted(backend, spec, &inst));
        }
        local.report.progress(&format!(
            "waiting for the engine on port {port} to answer /health …"
        ));
        match wait_ready(backend, spec, &mut inst) {
            Ok(pid) => {
                inst.save(spec)?;
                return Ok((inst, pid));
            }
            Err(Failure::PortTaken(why)) => {
                local
                    .report
                    .info(&format!("port {port} was taken meanwhile — trying another"));
                let _ = backend.down(spec, &inst);
                clear_instance(spec);
                last = why;
            }
            Err(Failure::Other(why)) => return Err(why),
        }
    }
    Err(format!(
        "no free loopback port after 3 tries (ports {tried:?}): {last}"
    ))
}

/// Why an engine that exited did so, with its log (or a lost port race).
fn gone(backend: &mut dyn Backend, spec: &Spec, inst: &Instance, why: String) -> Failure {
    let log = last_words(backend, spec, inst);
    if let Ok(tail) = &log
        && super::backend::says_port_taken(tail)
    {
        return Failure::PortTaken(tail.clone());
    }
    Failure::Other(format!(
        "the engine did not come up: {why}\nlast lines of the engine log:\n{}",
        indent_log(log).trim_end()
    ))
}

/// Polls for the discovery file (up to 20 s), then for a healthy `/health`; watches
/// the engine meanwhile so a crash fails at once, with its log.
fn wait_ready(
    backend: &mut dyn Backend,
    spec: &Spec,
    inst: &mut Instance,
) -> Result<Option<u32>, Failure> {
    let runtime = wait_discovery(backend, spec, inst)?;
    // The process backend listens on the host directly: trust the port it bound.
    let pid = if inst.backend.on_host() {
        inst.port = runtime.port;
        runtime.pid.or(inst.pid)
    } else {
        inst.pid
    };
    let deadline = Instant::now() + HEALTH_TIMEOUT;
    loop {
        let problem = match check_health(
            inst.port,
            &runtime.token,
            Duration::from_secs(2),
            &spec.discovery(),
        ) {
            Ok(()) => return Ok(pid),
            Err(problem) => problem,
        };
        if let Some(why) = backend.exited(spec, inst) {
            return Err(gone(backend, spec, inst, why));
        }
        if spawn::interrupted() {
            return Err(Failure::Other(interrupted(backend, spec, inst)));
        }
        if Instant::now() >= deadline {
            let why = format!(
                "the engine wrote its discovery file but is not healthy after {} s: {problem} (stopped it)",
                HEALTH_TIMEOUT.as_secs()
            );
            return Err(stop_for(backend, spec, inst, &why));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Takes down an engine whose start was interrupted, and forgets it: nothing
/// half-started is left for `status` to call up.
fn interrupted(backend: &mut dyn Backend, spec: &Spec, inst: &Instance) -> String {
    match backend.down(spec, inst) {
        Ok(()) => {
            clear_instance(spec);
            "interrupted while the engine was starting — it was stopped; nothing was recorded as applied".into()
        }
        // Recorded as it is: `status` tells the truth about it, and `down` stops it.
        Err(e) => format!(
            "interrupted while the engine was starting — stopping it failed ({e}); `down` stops it"
        ),
    }
}

/// Stops an engine that did not come up in time; the failure carries its log's tail.
fn stop_for(backend: &mut dyn Backend, spec: &Spec, inst: &Instance, why: &str) -> Failure {
    let message = with_tail(why, backend, spec, inst);
    let _ = backend.stop(spec, inst);
    Failure::Other(message)
}

fn wait_discovery(
    backend: &mut dyn Backend,
    spec: &Spec,
    inst: &Instance,
) -> Result<health::Runtime, Failure> {
    let started = Instant::now();
    let mut next_check = started + Duration::from_millis(100);
    let deadline = started + DISCOVERY_TIMEOUT;
    loop {
        if let Some(rt) = read_runtime(&spec.discovery()) {
            return Ok(rt);
        }
        let now = Instant::now();
        if now >= next_check {
            if let Some(why) = backend.exited(spec, inst) {
                return Err(gone(backend, spec, inst, why));
            }
            next_check = now + Duration::from_millis(250);
        }
        if spawn::interrupted() {
            return Err(Failure::Other(interrupted(backend, spec, inst)));
        }
        if now >= deadline {
            let why = format!(
                "no discovery file at {} after {} s — the engine did not finish starting (stopped it)",
                spec.discovery().display(),
                DISCOVERY_TIMEOUT.as_secs()
            );
            return Err(stop_for(backend, spec, inst, &why));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
