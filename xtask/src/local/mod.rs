//! The local place: backends (docker, podman, krunvm, process), discovery, verify.
//!
//! `apply` converges one deployment onto one backend: clean up what a dead run left,
//! `ensure` the backend, compare the fingerprint (the intended deployment + backend +
//! what `ensure` resolved) with the last applied one, and only when something changed
//! (or `--force`) replace the running engine. It returns once the engine wrote its
//! discovery file (`disco/runtime.json`, polled up to 20 s) and answered `GET /health`
//! with its token. See docs/local.md.

pub mod backend;
mod container;
mod detached;
pub mod http;
pub mod image;
mod krunvm;
mod process;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use self::backend::{Backend, Failure, Instance, Kind, Presence, Spec};
use crate::deployment::{Deployment, Place};
use crate::engine_env::engine_env;
use crate::flags::Verb;
use crate::secrets::{DeployEnv, Secret, Store};
use crate::state::{self, FileLock, Fingerprint};
use crate::verbs::plan::Intended;
use crate::verbs::{Ctx, Loaded, Outcome};

/// How long the kit waits for the engine's discovery file (SPEC §9.2).
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(20);
/// After discovery, how long the engine has to answer `/health` with 200.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(10);
/// One `verify` request.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(5);
/// Log lines shown with a failure.
const TAIL: usize = 15;

pub fn run(ctx: &Ctx, verb: Verb, loaded: &Loaded, d: &Deployment, force: bool) -> Outcome {
    let dir = loaded.app_dir.join(&d.id);
    let result = match verb {
        Verb::Apply => apply(ctx, d, &loaded.deploy_env, &dir, force),
        Verb::Down => down(ctx, &spec_of(d, &loaded.deploy_env, &dir)),
        Verb::Verify => verify(ctx, &spec_of(d, &loaded.deploy_env, &dir)),
        Verb::Status => status(ctx, &spec_of(d, &loaded.deploy_env, &dir)),
        Verb::Logs => logs(ctx, &spec_of(d, &loaded.deploy_env, &dir)),
        Verb::Url => url(ctx, &spec_of(d, &loaded.deploy_env, &dir)),
        other => Err(Outcome::error(format!(
            "`{}` is not a local lifecycle verb",
            other.name()
        ))),
    };
    result.unwrap_or_else(|outcome| outcome)
}

/// `deploy local`: a zero-config local engine, no file needed — an implicit deployment
/// with id `local` and every default, applied.
pub fn zero_config(ctx: &Ctx) -> Outcome {
    let app_dir = match state::app_dir() {
        Ok(dir) => dir,
        Err(e) => return Outcome::error(e),
    };
    let d = Deployment::new("local", Place::Local);
    let dir = app_dir.join(&d.id);
    let deploy_env = DeployEnv::capture(&Store::at(&dir)).unwrap_or_else(|problem| {
        ctx.say(format!("warning: {problem}"));
        DeployEnv::capture_env_only()
    });
    ctx.say(format!("valid — {} (zero-config, id `local`)", d.summary()));
    apply(ctx, &d, &deploy_env, &dir, false).unwrap_or_else(|outcome| outcome)
}

fn spec_of(d: &Deployment, deploy_env: &DeployEnv, dir: &Path) -> Spec {
    Spec::at(dir, &d.id, engine_env(d, deploy_env), d.port, &d.image)
}

type Verdict = Result<Outcome, Outcome>;

fn fail(message: impl Into<String>, fields: Value) -> Outcome {
    let mut outcome = Outcome::with_code(1, fields);
    outcome
        .fields
        .insert("error".into(), Value::String(message.into()));
    outcome
}

fn err(message: impl Into<String>) -> Outcome {
    Outcome::error(message)
}

/// The fields every local verb reports.
fn base_fields(spec: &Spec, inst: Option<&Instance>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("place".into(), json!("local"));
    m.insert("id".into(), json!(spec.id));
    m.insert("backend".into(), json!(inst.map(|i| i.backend.name())));
    m.insert(
        "discovery".into(),
        json!(spec.discovery().display().to_string()),
    );
    m.insert("data".into(), json!(spec.data.display().to_string()));
    m
}

fn describe(inst: &Instance, pid: Option<u32>) -> String {
    let mut parts = vec![inst.backend.name().to_string()];
    match inst.backend {
        Kind::Docker | Kind::Podman => {
            if let Some(c) = &inst.container {
                parts.push(format!("container {c}"));
            }
            if let Some(image) = &inst.image {
                parts.push(format!("image {image}"));
            }
        }
        Kind::Krunvm | Kind::Process => {
            if let Some(pid) = pid.or(inst.pid) {
                parts.push(format!("pid {pid}"));
            }
        }
    }
    parts.join(", ")
}

// ---------------------------------------------------------------- discovery + health

/// The engine's discovery file.
pub struct Runtime {
    pub port: u16,
    pub pid: Option<u32>,
    pub token: Secret,
}

pub fn read_runtime(path: &Path) -> Option<Runtime> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    Some(Runtime {
        port: u16::try_from(v.get("port")?.as_u64()?).ok()?,
        pid: v
            .get("pid")
            .and_then(Value::as_u64)
            .and_then(|p| u32::try_from(p).ok()),
        token: Secret::new(v.get("token")?.as_str()?),
    })
}

/// `GET /health` with the token: `Ok` on 200 with `ok` in the body, else which way it
/// failed, in words.
pub fn check_health(
    port: u16,
    token: &Secret,
    timeout: Duration,
    discovery: &Path,
) -> Result<(), String> {
    use self::http::HttpError;
    match http::get(port, "/health", token.expose(), timeout) {
        Err(HttpError::Refused) => Err(format!("nothing listening on 127.0.0.1:{port}")),
        Err(HttpError::Timeout) => Err(format!(
            "timeout — no answer from 127.0.0.1:{port} within {} s",
            timeout.as_secs_f32()
        )),
        Err(HttpError::Other(e)) => Err(format!("the request to 127.0.0.1:{port} failed: {e}")),
        Ok(r) if r.status == 401 => Err(format!(
            "401 unauthorized — token mismatch: the token in {} is not the engine's",
            discovery.display()
        )),
        Ok(r) if r.status != 200 => Err(format!("/health answered {} (expected 200)", r.status)),
        Ok(r) if !String::from_utf8_lossy(&r.body).contains("ok") => {
            Err("/health answered 200 but the body has no `ok`".into())
        }
        Ok(_) => Ok(()),
    }
}

fn log_tail(backend: &dyn Backend, spec: &Spec, inst: &Instance) -> String {
    indent_log(backend.logs(spec, inst, Some(TAIL)))
}

fn indent_log(log: Result<String, String>) -> String {
    match log {
        Ok(text) if text.trim().is_empty() => "  (the engine log is empty)".into(),
        Ok(text) => text.lines().map(|l| format!("  {l}\n")).collect::<String>(),
        Err(e) => format!("  (no engine log: {e})"),
    }
}

fn with_tail(message: &str, backend: &dyn Backend, spec: &Spec, inst: &Instance) -> String {
    format!(
        "{message}\nlast lines of the engine log:\n{}",
        log_tail(backend, spec, inst).trim_end()
    )
}

/// The log of an engine that just exited: a container's log can land a moment after
/// its state says exited, so an empty answer is asked again for up to 2 s.
fn last_words(backend: &dyn Backend, spec: &Spec, inst: &Instance) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let log = backend.logs(spec, inst, Some(TAIL));
        let empty = log.as_ref().is_ok_and(|t| t.trim().is_empty());
        if !empty || Instant::now() >= deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------- apply

fn apply(ctx: &Ctx, d: &Deployment, deploy_env: &DeployEnv, dir: &Path, force: bool) -> Verdict {
    apply_excluding(ctx, d, deploy_env, dir, force, &[])
}

/// `apply`, never choosing a backend in `exclude`: an auto-chosen backend that cannot
/// start the engine (podman installed but unable to run containers, say) gives way to
/// the next one, with a warning that names how to insist on it.
fn apply_excluding(
    ctx: &Ctx,
    d: &Deployment,
    deploy_env: &DeployEnv,
    dir: &Path,
    force: bool,
    exclude: &[Kind],
) -> Verdict {
    let spec = spec_of(d, deploy_env, dir);
    for sub in [&spec.dir, &spec.data, &spec.disco] {
        state::ensure_private_dir(sub).map_err(err)?;
    }
    let _lock = FileLock::acquire(&dir.join("local.lock")).map_err(err)?;
    state::sweep_temp_files(dir);
    let (mut candidates, forced) = backend::candidates(exclude).map_err(err)?;

    // What is there now: a dead run is cleaned up; a live one may stay.
    let previous = Instance::load(&spec);
    let preferred_port = previous
        .as_ref()
        .map(|i| i.port)
        .or_else(|| read_port(&spec));
    let live = match &previous {
        Some(prev) => {
            let old = backend::for_kind(prev.backend);
            match old.status(&spec, prev) {
                Presence::Running { .. } => Some(prev.clone()),
                Presence::Stopped { why } => {
                    ctx.say(format!(
                        "cleaning up after a run that died ({why}): stale {} removed",
                        stale_what(prev)
                    ));
                    old.down(&spec, prev).map_err(err)?;
                    clear_instance(&spec);
                    None
                }
                Presence::Absent => {
                    ctx.say(format!(
                        "cleaning up: the recorded {} engine is gone",
                        prev.backend.name()
                    ));
                    clear_instance(&spec);
                    None
                }
            }
        }
        None => {
            clean_orphan_files(ctx, &spec);
            None
        }
    };

    // A running engine keeps its backend unless the user forces another: re-applying
    // after a fallback must not switch backends under it.
    if let Some(prev) = &live
        && let Some(i) = candidates.iter().position(|k| *k == prev.backend)
    {
        let kept = candidates.remove(i);
        candidates.insert(0, kept);
    }
    let kind = candidates[0];
    let fallback = (!forced && candidates.len() > 1).then(|| {
        let mut more = exclude.to_vec();
        more.push(kind);
        more
    });
    let mut backend = backend::for_kind(kind);
    if let Err(why) = backend.ensure(ctx, &spec) {
        if let Some(more) = fallback {
            ctx.say(format!(
                "warning: {} is not usable ({why}) — trying the next backend; WB_VMM_BACKEND={} insists on it",
                kind.name(),
                kind.name()
            ));
            drop(_lock);
            return apply_excluding(ctx, d, deploy_env, dir, force, &more);
        }
        return Err(err(why));
    }
    let salt = state::salt(dir).map_err(err)?;
    let intended = Intended::of(d, deploy_env, None).fingerprint(d, &salt);
    let resolved = |backend: &mut dyn Backend| -> Result<Fingerprint, Outcome> {
        let mut f = Fingerprint::default();
        f.put("backend", kind.name(), &salt);
        for (part, value) in backend.parts(&spec).map_err(err)? {
            f.put(part, &value, &salt);
        }
        Ok(f)
    };

    let mut action = "created";
    if let Some(prev) = &live {
        let mut fingerprint = intended.clone();
        fingerprint.parts.extend(resolved(backend.as_mut())?.parts);
        let before = last_applied(dir);
        let unchanged = prev.backend == kind && before.as_ref() == Some(&fingerprint);
        let health = read_runtime(&spec.discovery())
            .ok_or_else(|| "no discovery file".to_string())
            .and_then(|rt| {
                check_health(
                    prev.port,
                    &rt.token,
                    Duration::from_secs(2),
                    &spec.discovery(),
                )
            });
        if unchanged && !force && health.is_ok() {
            let line = format!(
                "runtime up — {} ({}; unchanged since the last apply — nothing touched)",
                prev.url(),
                describe(prev, None)
            );
            ctx.say(ctx.good(&line));
            let mut f = base_fields(&spec, Some(prev));
            f.insert("url".into(), json!(prev.url()));
            f.insert("pid".into(), json!(prev.pid));
            f.insert("container".into(), json!(prev.container));
            f.insert("image".into(), json!(prev.image));
            f.insert("action".into(), json!("unchanged"));
            f.insert("changes".into(), json!([]));
            return Ok(Outcome { code: 0, fields: f });
        }
        let why = if force {
            "--force".to_string()
        } else if let Err(problem) = &health {
            format!("it is not healthy: {problem}")
        } else if prev.backend != kind {
            format!("backend {} → {}", prev.backend.name(), kind.name())
        } else {
            match &before {
                None => "no record of the last apply".to_string(),
                Some(before) => fingerprint
                    .diff(before)
                    .iter()
                    .map(|(part, how)| format!("{part} {how}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        };
        ctx.say(format!(
            "replacing the running engine ({}) — {why}",
            describe(prev, None)
        ));
        backend::for_kind(prev.backend)
            .down(&spec, prev)
            .map_err(err)?;
        clear_instance(&spec);
        action = "replaced";
    }

    forget_applied(dir);
    let (inst, pid) = match bring_up(ctx, backend.as_mut(), &spec, preferred_port) {
        Ok(up) => up,
        Err(why) if fallback.is_some() && kind != Kind::Process => {
            ctx.say(format!(
                "warning: {} could not start the engine: {why}\n  trying the next backend; WB_VMM_BACKEND={} insists on it",
                kind.name(),
                kind.name()
            ));
            drop(_lock);
            return apply_excluding(
                ctx,
                d,
                deploy_env,
                dir,
                force,
                &fallback.unwrap_or_default(),
            );
        }
        Err(why) => {
            return Err(fail(why, {
                let mut f = base_fields(&spec, None);
                f.insert("backend".into(), json!(kind.name()));
                Value::Object(f)
            }));
        }
    };
    state::record_applied(dir, &intended).map_err(err)?;
    state::atomic_write(
        &dir.join(LOCAL_APPLIED),
        resolved(backend.as_mut())?.to_json().as_bytes(),
        0o600,
    )
    .map_err(err)?;
    let _ = state::atomic_write(
        &dir.join("port"),
        format!("{}\n", inst.port).as_bytes(),
        0o600,
    );
    let line = format!("runtime up — {} ({})", inst.url(), describe(&inst, pid));
    ctx.say(ctx.good(&line));
    if kind == Kind::Process {
        ctx.say("  it outlives this command; `cargo xtask deploy down` stops it");
    }
    let mut f = base_fields(&spec, Some(&inst));
    f.insert("url".into(), json!(inst.url()));
    f.insert("pid".into(), json!(pid.or(inst.pid)));
    f.insert("container".into(), json!(inst.container));
    f.insert("image".into(), json!(inst.image));
    f.insert("action".into(), json!(action));
    Ok(Outcome { code: 0, fields: f })
}

/// Beside `last-applied.json` (the intended deployment, which `plan` compares): what
/// the backend resolved — backend, image, engine binary — so `plan` never reports
/// those as removed, and `apply` still replaces the engine when one changes.
const LOCAL_APPLIED: &str = "local-applied.json";

fn last_applied(dir: &Path) -> Option<Fingerprint> {
    let mut all = state::last_applied(dir)?;
    let text = std::fs::read_to_string(dir.join(LOCAL_APPLIED)).ok()?;
    all.parts.extend(Fingerprint::from_json(&text)?.parts);
    Some(all)
}

fn forget_applied(dir: &Path) {
    let _ = state::forget_applied(dir);
    let _ = std::fs::remove_file(dir.join(LOCAL_APPLIED));
}

fn stale_what(inst: &Instance) -> &'static str {
    match inst.backend {
        Kind::Process | Kind::Krunvm => "pid file and discovery file",
        Kind::Docker | Kind::Podman => "container and discovery file",
    }
}

fn read_port(spec: &Spec) -> Option<u16> {
    std::fs::read_to_string(spec.dir.join("port"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Forgets the instance record and the files only a live engine should leave.
fn clear_instance(spec: &Spec) {
    Instance::forget(spec);
    let _ = std::fs::remove_file(spec.discovery());
    let _ = std::fs::remove_file(&spec.pid_file);
}

/// No instance record, yet a pid file or a discovery file: left by a kit or engine that
/// died mid-way. A pid file whose process is gone, and any discovery file, are removed.
fn clean_orphan_files(ctx: &Ctx, spec: &Spec) {
    if let Some(pid) = detached::read_pid(spec) {
        if detached::alive(pid, None) {
            ctx.say(format!(
                "warning: {} names process {pid}, which is running but not recorded by the kit — leaving it alone",
                spec.pid_file.display()
            ));
        } else {
            ctx.say(format!("removed a stale pid file (process {pid} is gone)"));
            let _ = std::fs::remove_file(&spec.pid_file);
        }
    }
    if spec.discovery().exists() {
        ctx.say("removed a stale discovery file");
        let _ = std::fs::remove_file(spec.discovery());
    }
}

/// Starts the engine on a free loopback port and waits until it is healthy; a port
/// lost to a race is retried on another (three tries).
fn bring_up(
    ctx: &Ctx,
    backend: &mut dyn Backend,
    spec: &Spec,
    preferred: Option<u16>,
) -> Result<(Instance, Option<u32>), String> {
    let mut tried = Vec::new();
    let mut last = String::new();
    for attempt in 0..3 {
        let port = backend::free_port(if attempt == 0 { preferred } else { None }, &tried)?;
        if attempt == 0
            && let Some(p) = preferred
            && p != port
        {
            ctx.say(format!("port {p} (used last time) is taken — using {port}"));
        }
        tried.push(port);
        let _ = std::fs::remove_file(spec.discovery());
        let step = backend
            .create(spec, port)
            .and_then(|()| backend.run(spec, port));
        let mut inst = match step {
            Ok(inst) => inst,
            Err(Failure::PortTaken(why)) => {
                ctx.say(format!("port {port} was taken meanwhile — trying another"));
                last = why;
                continue;
            }
            Err(Failure::Other(why)) => return Err(why),
        };
        inst.save(spec)?;
        match wait_ready(backend, spec, &mut inst) {
            Ok(pid) => {
                inst.save(spec)?;
                return Ok((inst, pid));
            }
            Err(Failure::PortTaken(why)) => {
                ctx.say(format!("port {port} was taken meanwhile — trying another"));
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

/// Polls for the discovery file (up to 20 s), then for a healthy `/health`; watches
/// the engine meanwhile so a crash fails at once, with its log.
fn wait_ready(
    backend: &mut dyn Backend,
    spec: &Spec,
    inst: &mut Instance,
) -> Result<Option<u32>, Failure> {
    let started = Instant::now();
    let mut next_check = started + Duration::from_millis(100);
    let gone = |backend: &mut dyn Backend, inst: &Instance, why: String| {
        let log = last_words(backend, spec, inst);
        if let Ok(tail) = &log
            && backend::says_port_taken(tail)
        {
            return Failure::PortTaken(tail.clone());
        }
        Failure::Other(format!(
            "the engine did not come up: {why}\nlast lines of the engine log:\n{}",
            indent_log(log).trim_end()
        ))
    };
    let deadline = started + DISCOVERY_TIMEOUT;
    let runtime = loop {
        if let Some(rt) = read_runtime(&spec.discovery()) {
            break rt;
        }
        let now = Instant::now();
        if now >= next_check {
            if let Some(why) = backend.exited(spec, inst) {
                return Err(gone(backend, inst, why));
            }
            next_check = now + Duration::from_millis(250);
        }
        if now >= deadline {
            let message = with_tail(
                &format!(
                    "no discovery file at {} after {} s — the engine did not finish starting (stopped it)",
                    spec.discovery().display(),
                    DISCOVERY_TIMEOUT.as_secs()
                ),
                backend,
                spec,
                inst,
            );
            let _ = backend.stop(spec, inst);
            return Err(Failure::Other(message));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // The process backend listens on the host directly: trust the port it bound.
    if inst.backend == Kind::Process {
        inst.port = runtime.port;
    }
    let pid = match inst.backend {
        Kind::Process => runtime.pid.or(inst.pid),
        _ => inst.pid,
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
            return Err(gone(backend, inst, why));
        }
        if Instant::now() >= deadline {
            let message = with_tail(
                &format!(
                    "the engine wrote its discovery file but is not healthy after {} s: {problem} (stopped it)",
                    HEALTH_TIMEOUT.as_secs()
                ),
                backend,
                spec,
                inst,
            );
            let _ = backend.stop(spec, inst);
            return Err(Failure::Other(message));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

// ---------------------------------------------------------------- down

fn down(ctx: &Ctx, spec: &Spec) -> Verdict {
    let dir = &spec.dir;
    if !dir.exists() {
        ctx.say(format!(
            "runtime down — nothing was running; no data at {}",
            spec.data.display()
        ));
        let mut f = base_fields(spec, None);
        f.insert("was_running".into(), json!(false));
        return Ok(Outcome { code: 0, fields: f });
    }
    let _lock = FileLock::acquire(&dir.join("local.lock")).map_err(err)?;
    let inst = Instance::load(spec).or_else(|| unrecorded_container(spec));
    let mut was_running = false;
    if let Some(inst) = &inst {
        let b = backend::for_kind(inst.backend);
        was_running = matches!(b.status(spec, inst), Presence::Running { .. });
        b.down(spec, inst)
            .map_err(|e| fail(e, Value::Object(base_fields(spec, Some(inst)))))?;
    }
    clear_instance(spec);
    forget_applied(dir);
    ctx.say(ctx.good(&format!(
        "runtime down — data preserved at {}",
        spec.data.display()
    )));
    let mut f = base_fields(spec, inst.as_ref());
    f.insert("was_running".into(), json!(was_running));
    Ok(Outcome { code: 0, fields: f })
}

/// With no record on disk, a container named `wb-<id>` of the current container backend
/// is still ours (its name says so): `down` removes it.
fn unrecorded_container(spec: &Spec) -> Option<Instance> {
    let kind = backend::choose().ok().filter(|k| k.is_container())?;
    let mut inst = Instance::new(kind, 0);
    inst.container = Some(spec.name());
    let present = backend::for_kind(kind).status(spec, &inst) != Presence::Absent;
    present.then_some(inst)
}

// ---------------------------------------------------------------- status, url, logs

fn status(ctx: &Ctx, spec: &Spec) -> Verdict {
    let inst = Instance::load(spec);
    let mut f = base_fields(spec, inst.as_ref());
    f.insert("log".into(), json!(spec.log.display().to_string()));
    let Some(inst) = inst else {
        ctx.say(format!(
            "runtime down — nothing running for `{}` (data at {})",
            spec.id,
            spec.data.display()
        ));
        for key in ["url", "pid", "container"] {
            f.insert(key.into(), Value::Null);
        }
        f.insert("running".into(), json!(false));
        f.insert("state".into(), json!("down"));
        return Ok(Outcome { code: 0, fields: f });
    };
    let b = backend::for_kind(inst.backend);
    let presence = b.status(spec, &inst);
    f.insert("container".into(), json!(inst.container));
    f.insert("image".into(), json!(inst.image));
    match presence {
        Presence::Running { pid } => {
            ctx.say(format!(
                "runtime up — {} ({})",
                inst.url(),
                describe(&inst, pid)
            ));
            ctx.say(format!("discovery: {}", spec.discovery().display()));
            f.insert("url".into(), json!(inst.url()));
            f.insert("pid".into(), json!(pid));
            f.insert("running".into(), json!(true));
            f.insert("state".into(), json!("running"));
        }
        Presence::Stopped { why } => {
            ctx.say(format!(
                "runtime stopped — {why}; `apply` restarts it, `logs` shows why it stopped"
            ));
            f.insert("url".into(), Value::Null);
            f.insert("pid".into(), Value::Null);
            f.insert("running".into(), json!(false));
            f.insert("state".into(), json!("stopped"));
            f.insert("reason".into(), json!(why));
        }
        Presence::Absent => {
            ctx.say(format!(
                "runtime gone — the recorded {} engine no longer exists; `apply` starts a new one",
                inst.backend.name()
            ));
            f.insert("url".into(), Value::Null);
            f.insert("pid".into(), Value::Null);
            f.insert("running".into(), json!(false));
            f.insert("state".into(), json!("gone"));
        }
    }
    Ok(Outcome { code: 0, fields: f })
}

fn running(spec: &Spec) -> Result<(Instance, Option<u32>), Outcome> {
    let not = |why: String| {
        fail(
            format!("{why} — `cargo xtask deploy apply` starts it"),
            Value::Object(base_fields(spec, None)),
        )
    };
    let inst =
        Instance::load(spec).ok_or_else(|| not(format!("nothing is running for `{}`", spec.id)))?;
    match backend::for_kind(inst.backend).status(spec, &inst) {
        Presence::Running { pid } => Ok((inst, pid)),
        Presence::Stopped { why } => Err(not(format!("the engine is not running ({why})"))),
        Presence::Absent => Err(not("the engine is gone".into())),
    }
}

fn url(ctx: &Ctx, spec: &Spec) -> Verdict {
    let (inst, _) = running(spec)?;
    if !ctx.json {
        println!("{}", inst.url());
    }
    let mut f = base_fields(spec, Some(&inst));
    f.insert("url".into(), json!(inst.url()));
    Ok(Outcome { code: 0, fields: f })
}

/// The engine's log: the log file (process, krunvm), the container's log (docker,
/// podman). Printed on stdout; with `--json`, carried as `log`.
fn logs(ctx: &Ctx, spec: &Spec) -> Verdict {
    let inst = Instance::load(spec);
    let text = match &inst {
        Some(inst) => backend::for_kind(inst.backend).logs(spec, inst, None),
        None if spec.log.exists() => detached::read_log(spec, None),
        None => Err(format!(
            "no engine has run for `{}` yet — nothing to show",
            spec.id
        )),
    }
    .map_err(|e| fail(e, Value::Object(base_fields(spec, inst.as_ref()))))?;
    if !ctx.json {
        print!("{text}");
    }
    let mut f = base_fields(spec, inst.as_ref());
    f.insert("log".into(), json!(text));
    Ok(Outcome { code: 0, fields: f })
}

// ---------------------------------------------------------------- verify

fn verify(ctx: &Ctx, spec: &Spec) -> Verdict {
    let Some(inst) = Instance::load(spec) else {
        let mut message = format!(
            "nothing is running for `{}` — `cargo xtask deploy apply` starts it",
            spec.id
        );
        if let Ok(text) = detached::read_log(spec, Some(TAIL))
            && !text.trim().is_empty()
        {
            message.push_str("\nlast lines of the engine log:\n");
            message.extend(text.lines().map(|l| format!("  {l}\n")));
        }
        let mut f = base_fields(spec, None);
        f.insert("healthy".into(), json!(false));
        return Err(fail(message.trim_end(), Value::Object(f)));
    };
    let b = backend::for_kind(inst.backend);
    let url = inst.url();
    let mut f = base_fields(spec, Some(&inst));
    f.insert("url".into(), json!(url));
    let problem = match read_runtime(&spec.discovery()) {
        None => match b.status(spec, &inst) {
            Presence::Running { .. } => format!(
                "the engine is running but there is no discovery file at {}",
                spec.discovery().display()
            ),
            Presence::Stopped { why } => format!(
                "the engine is not running ({why}); no discovery file at {}",
                spec.discovery().display()
            ),
            Presence::Absent => format!(
                "the engine is gone; no discovery file at {}",
                spec.discovery().display()
            ),
        },
        Some(rt) => match check_health(inst.port, &rt.token, VERIFY_TIMEOUT, &spec.discovery()) {
            Ok(()) => {
                ctx.say(ctx.good(&format!("runtime healthy — {url}/health → 200")));
                f.insert("healthy".into(), json!(true));
                f.insert("status".into(), json!(200));
                return Ok(Outcome { code: 0, fields: f });
            }
            Err(problem) => problem,
        },
    };
    let tail = log_tail(b.as_ref(), spec, &inst);
    f.insert("healthy".into(), json!(false));
    f.insert("reason".into(), json!(problem));
    f.insert(
        "log_tail".into(),
        json!(tail.lines().map(str::trim_start).collect::<Vec<_>>()),
    );
    Err(fail(
        format!(
            "runtime not healthy — {url}/health: {problem}\nlast lines of the engine log:\n{}",
            tail.trim_end()
        ),
        Value::Object(f),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A one-shot server answering `raw` to the first request.
    fn serve(raw: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(raw.as_bytes());
            }
        });
        port
    }

    fn health(port: u16) -> Result<(), String> {
        check_health(
            port,
            &Secret::new("t"),
            Duration::from_secs(2),
            Path::new("/d/runtime.json"),
        )
    }

    #[test]
    fn health_says_which_way_it_failed() {
        let ok = serve("HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}");
        assert_eq!(health(ok), Ok(()));
        let unauthorized =
            serve("HTTP/1.1 401 Unauthorized\r\nContent-Length: 12\r\n\r\nunauthorized");
        let e = health(unauthorized).unwrap_err();
        assert!(
            e.contains("401") && e.contains("token mismatch") && e.contains("/d/runtime.json"),
            "{e}"
        );
        let other = serve("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
        assert!(health(other).unwrap_err().contains("answered 503"));
        let no_ok = serve("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnope");
        assert!(health(no_ok).unwrap_err().contains("body has no `ok`"));
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(health(closed).unwrap_err().contains("nothing listening"));
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let e = check_health(
            silent.local_addr().unwrap().port(),
            &Secret::new("t"),
            Duration::from_millis(300),
            Path::new("/d"),
        )
        .unwrap_err();
        assert!(e.starts_with("timeout"), "{e}");
    }

    #[test]
    fn runtime_json_is_read_and_the_token_stays_redacted() {
        let dir = std::env::temp_dir().join(format!("wb-rt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("runtime.json");
        std::fs::write(&path, "{\"port\": 4000, \"pid\": 1, \"token\": \"abc\"}\n").unwrap();
        let rt = read_runtime(&path).unwrap();
        assert_eq!((rt.port, rt.pid), (4000, Some(1)));
        assert_eq!(rt.token.expose(), "abc");
        assert_eq!(format!("{:?}", rt.token), "<redacted>");
        std::fs::write(&path, "{\"port\": 4000").unwrap();
        assert!(
            read_runtime(&path).is_none(),
            "a half-written file is not discovery"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
