//! `SCALE: N` on the local place (SPEC §12, §18 "Local SCALE"): N engines of one
//! backend, each on its own loopback port, named `wb-<id>.<n>` (n from 1), each with
//! `instances/<n>/{disco,engine.pid,engine.log}` beside the one shared `data/`.
//!
//! `apply` keeps every instance that runs, is healthy and is as last applied; it starts
//! the missing, dead or changed ones in parallel (one thread each), stops instances
//! beyond N, and on any failure stops the instances it started in this run. krunvm
//! refuses (one VM per deployment).

use std::path::Path;
use std::sync::Mutex;

use super::backend::registry::{self, Kind};
use super::backend::{Instance, Presence, Spec};
use super::converge::{self, Up, UpAction};
use super::{Failed, Local, describe};
use crate::core::plan::{self, Applied};
use crate::report::Report;
use crate::state;

/// One instance of a scaled deployment, as `status` reports it.
#[derive(Debug, Clone)]
pub struct Member {
    pub index: u16,
    pub url: Option<String>,
    pub pid: Option<u32>,
    pub discovery: std::path::PathBuf,
    pub healthy: bool,
}

/// Words from the threads that start instances, replayed in instance order.
#[derive(Default)]
struct Collect(Mutex<Vec<(u8, String)>>);

impl Report for Collect {
    fn info(&self, text: &str) {
        self.0.lock().unwrap().push((0, text.to_string()));
    }
    fn good(&self, text: &str) {
        self.0.lock().unwrap().push((1, text.to_string()));
    }
    fn warn(&self, text: &str) {
        self.0.lock().unwrap().push((2, text.to_string()));
    }
}

impl Collect {
    fn replay(self, n: u16, to: &dyn Report) {
        for (kind, text) in self.0.into_inner().unwrap() {
            let text = format!("instance {n}: {text}");
            match kind {
                0 => to.info(&text),
                1 => to.good(&text),
                _ => to.warn(&text),
            }
        }
    }
}

/// The backend a scaled apply uses: a forced one (krunvm refused), else the running
/// instance 1's when still a candidate, else the first candidate that is not krunvm.
fn backend_for(local: &Local, top: &Spec) -> Result<Kind, String> {
    let (candidates, forced) = registry::candidates(local.edge, &[])?;
    let refuse = |n: u16| {
        format!(
            "SCALE: {n} runs {n} engines, each on its own loopback port, and the krunvm backend runs one VM per deployment — set WB_VMM_BACKEND=process, docker or podman, or SCALE: 1"
        )
    };
    if forced && candidates.first() == Some(&Kind::Krunvm) {
        return Err(refuse(local.d.scale));
    }
    let usable: Vec<Kind> = candidates
        .into_iter()
        .filter(|k| *k != Kind::Krunvm)
        .collect();
    let running = Instance::load(&top.instance(1)).map(|i| i.backend);
    Ok(running
        .filter(|k| usable.contains(k))
        .or_else(|| usable.first().copied())
        .unwrap_or(Kind::Process))
}

pub fn apply(local: &Local, force: bool) -> Result<Up, Failed> {
    let top = local.spec();
    let first = top.instance(1);
    let fail = |e: String| local.fail(&first, None, e);
    for sub in [&top.dir, &top.data] {
        state::ensure_private_dir(sub).map_err(fail)?;
    }
    let _lock = local.lock(&top).map_err(fail)?;
    state::sweep_temp_files(&top.dir);
    let kind = backend_for(local, &top).map_err(fail)?;
    let mut backend = registry::for_kind(kind, local.edge);
    backend.ensure(local.report, &first).map_err(fail)?;
    let salt = state::salt(&top.dir).map_err(fail)?;
    let intended = plan::Intended::new(local.d, local.deploy_env, None, &[], false);
    let before = state::last_applied(&top.dir);
    let had_record = before.is_some();
    let plan = plan::plan(
        local.d,
        &intended,
        before.as_ref().map(|b| (b, salt.as_slice())),
    )
    .after_down(state::releases::is_stopped(&top.dir));
    let (resolved, raw) =
        converge::resolved(local, backend.as_mut(), &first, kind, &salt).map_err(fail)?;
    let record = Applied {
        intended: intended.fingerprint(local.d, &salt),
        resolved,
    };
    let mut changes = plan.lines();
    let before_resolved = before.map(|b| b.resolved).unwrap_or_default();
    changes.extend(
        record
            .resolved
            .diff(&before_resolved)
            .iter()
            .map(ToString::to_string),
    );
    retire(local, &top, local.d.scale).map_err(fail)?;
    let (kept, start) = settle(local, &top, kind, !changes.is_empty() || force).map_err(fail)?;
    if !start.is_empty() {
        let _ = state::forget_applied(&top.dir);
    }
    for (n, inst, pid) in &kept {
        local.report.good(&format!(
            "instance {n}: runtime up — {} ({}; unchanged — nothing touched)",
            inst.url(),
            describe(inst, *pid)
        ));
    }
    let mut all = start_all(local, kind, &top, &start)?;
    all.extend(kept.iter().cloned());
    all.sort_by_key(|(n, _, _)| *n);
    if !start.is_empty() || !had_record {
        // Only an apply that changed something appends a release (SPEC §18).
        let release = local.release(record, converge::image_id(kind, &raw), Default::default());
        state::releases::append(&top.dir, release).map_err(fail)?;
    }
    let (_, inst, pid) = all[0].clone();
    let action = match (start.is_empty(), kept.is_empty()) {
        (true, _) => UpAction::Unchanged,
        (false, true) if changes.iter().any(|c| c.starts_with("create")) => UpAction::Created,
        _ => UpAction::Replaced,
    };
    Ok(Up {
        at: local.at(&first, Some(&inst)),
        inst,
        pid,
        action,
        changes: if start.is_empty() {
            Vec::new()
        } else {
            changes
        },
    })
}

/// Stops what no longer belongs to `SCALE: n`: with n > 1 the single instance of
/// `SCALE: 1` and every instance beyond n; with n = 1 every numbered instance (their
/// directories go too; `data/` stays).
pub fn retire(local: &Local, top: &Spec, n: u16) -> Result<(), String> {
    if n > 1
        && let Some(inst) = Instance::load(top)
    {
        local.report.info(&format!(
            "stopping the single engine ({}) — SCALE: {n} runs instances 1–{n}",
            describe(&inst, None)
        ));
        registry::for_kind(inst.backend, local.edge).down(top, &inst)?;
        converge::clear_instance(top);
    }
    let keep = if n > 1 { n } else { 0 };
    for m in indices(&top.dir).into_iter().filter(|m| *m > keep) {
        let spec = top.instance(m);
        if let Some(inst) = Instance::load(&spec) {
            local.report.info(&format!(
                "stopping instance {m} ({}) — SCALE is {n} now",
                describe(&inst, None)
            ));
            registry::for_kind(inst.backend, local.edge).down(&spec, &inst)?;
        }
        converge::clear_instance(&spec);
        let _ = std::fs::remove_dir_all(&spec.dir);
    }
    Ok(())
}

/// The instance numbers that have a directory under `instances/`.
pub fn indices(dir: &Path) -> Vec<u16> {
    let mut out: Vec<u16> = std::fs::read_dir(dir.join("instances"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|n| *n >= 1)
        .collect();
    out.sort_unstable();
    out
}

type Started = (u16, Instance, Option<u32>);

/// Which instances stay (running, healthy, same backend, nothing changed) and which
/// must start; a dead or replaced one is stopped and cleared here.
fn settle(
    local: &Local,
    top: &Spec,
    kind: Kind,
    changed: bool,
) -> Result<(Vec<Started>, Vec<u16>), String> {
    let (mut kept, mut start) = (Vec::new(), Vec::new());
    for n in 1..=local.d.scale {
        let spec = top.instance(n);
        state::ensure_private_dir(&spec.dir)?;
        state::ensure_private_dir(&spec.disco)?;
        let Some(inst) = Instance::load(&spec) else {
            converge::clear_instance(&spec);
            start.push(n);
            continue;
        };
        let b = registry::for_kind(inst.backend, local.edge);
        let presence = b.status(&spec, &inst);
        if let Presence::Running { pid } = presence
            && inst.backend == kind
            && !changed
            && converge::current_health(&spec, &inst).is_ok()
        {
            kept.push((n, inst, pid));
            continue;
        }
        let why = match presence {
            Presence::Running { .. } if changed => "the deployment changed".to_string(),
            Presence::Running { .. } => "it is not healthy".to_string(),
            Presence::Stopped { why } => why,
            Presence::Absent => "it is gone".to_string(),
        };
        local.report.info(&format!(
            "instance {n}: replacing {} — {why}",
            describe(&inst, None)
        ));
        b.down(&spec, &inst)?;
        converge::clear_instance(&spec);
        start.push(n);
    }
    Ok((kept, start))
}

/// Starts the instances `which` in parallel, each on its own port; if any fails, the
/// ones this call started are stopped and the first failure (lowest index) returned.
fn start_all(local: &Local, kind: Kind, top: &Spec, which: &[u16]) -> Result<Vec<Started>, Failed> {
    let parts = Parts {
        d: local.d,
        deploy_env: local.deploy_env,
        paths: local.paths,
        edge: local.edge,
    };
    let parts = &parts;
    let results: Vec<(u16, Collect, Result<Started, String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = which
            .iter()
            .map(|&n| scope.spawn(move || start_one(parts, kind, top, n)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("an instance thread panicked"))
            .collect()
    });
    let mut started = Vec::new();
    let mut first_error = None;
    for (n, words, result) in results {
        words.replay(n, local.report);
        match result {
            Ok(s) => started.push(s),
            Err(why) if first_error.is_none() => first_error = Some((n, why)),
            Err(_) => {}
        }
    }
    let Some((n, why)) = first_error else {
        return Ok(started);
    };
    for (m, inst, _) in &started {
        let spec = top.instance(*m);
        local
            .report
            .info(&format!("instance {m}: stopped — instance {n} failed"));
        let _ = registry::for_kind(kind, local.edge).down(&spec, inst);
        converge::clear_instance(&spec);
    }
    let spec = top.instance(n);
    let mut failed = local.fail(&spec, None, format!("instance {n}: {why}"));
    failed.at.backend = Some(kind);
    Err(failed)
}

/// What a starting thread needs of [`Local`] (whose report stays on the main thread).
struct Parts<'a> {
    d: &'a crate::core::deployment::Deployment,
    deploy_env: &'a crate::core::secret::DeployEnv,
    paths: &'a crate::state::Paths,
    edge: &'a crate::edge::Edge,
}

fn start_one(
    parts: &Parts,
    kind: Kind,
    top: &Spec,
    n: u16,
) -> (u16, Collect, Result<Started, String>) {
    let words = Collect::default();
    let spec = top.instance(n);
    let quiet = Local {
        d: parts.d,
        deploy_env: parts.deploy_env,
        paths: parts.paths,
        edge: parts.edge,
        report: &words,
        lock_wait: std::time::Duration::ZERO,
    };
    let mut backend = registry::for_kind(kind, parts.edge);
    let result = backend
        .ensure(&words, &spec)
        .and_then(|()| {
            let preferred = converge::read_port(&spec);
            converge::bring_up(&quiet, backend.as_mut(), &spec, preferred)
        })
        .and_then(|(inst, pid)| {
            state::atomic_write(
                &spec.dir.join("port"),
                format!("{}\n", inst.port).as_bytes(),
                0o600,
            )?;
            words.good(&format!(
                "runtime up — {} ({})",
                inst.url(),
                describe(&inst, pid)
            ));
            Ok((n, inst, pid))
        });
    (n, words, result)
}

/// Every instance of a scaled deployment, as `status` lists them.
pub fn members(local: &Local, top: &Spec) -> Vec<Member> {
    (1..=local.d.scale)
        .map(|n| {
            let spec = top.instance(n);
            let inst = Instance::load(&spec);
            let running = inst.as_ref().and_then(|i| {
                match registry::for_kind(i.backend, local.edge).status(&spec, i) {
                    Presence::Running { pid } => Some(pid.or(i.pid)),
                    _ => None,
                }
            });
            Member {
                index: n,
                url: inst.as_ref().map(Instance::url),
                pid: running.flatten(),
                healthy: running.is_some()
                    && inst
                        .as_ref()
                        .is_some_and(|i| converge::current_health(&spec, i).is_ok()),
                discovery: spec.discovery(),
            }
        })
        .collect()
}
