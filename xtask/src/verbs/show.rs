//! `status`, `logs`, `url`: read-only looks at a deployment.

use serde_json::{Map, Value, json};

use super::{Ctx, Outcome, Verdict, cloud, local, local_fields, paths};
use crate::core::deployment::{Deployment, Place};
use crate::load::Loaded;
use crate::local::{State, describe};
use crate::providers::sealed::Action;

pub fn status(cx: &Ctx, loaded: &Loaded, d: &Deployment) -> Verdict {
    let paths = paths(loaded, d);
    if d.place == Place::Cloud {
        let recipes = loaded.recipes.clone()?;
        let cloud = cloud(cx, loaded, d, &paths, &recipes);
        let output = cloud.show(Action::Status)?;
        return Ok(Outcome::ok(json!({
            "id": d.id,
            "provider": d.provider,
            "output": output,
            "applied": cloud.applied(),
        })));
    }
    let s = local(cx, loaded, d, &paths).status();
    let mut f = local_fields(&s.at);
    // A container's log is the tool's (`podman logs NAME`), not a file: no path then.
    let container = s
        .inst
        .as_ref()
        .and_then(|i| i.container.clone().map(|c| (i.backend, c)));
    f.insert(
        "log".into(),
        match &container {
            None if s.at.log.exists() => json!(s.at.log.display().to_string()),
            _ => Value::Null,
        },
    );
    f.insert(
        "log_command".into(),
        json!(container.map(|(kind, name)| format!("{} logs {name}", kind.name()))),
    );
    f.insert("state".into(), json!(s.state.name()));
    f.insert(
        "running".into(),
        json!(matches!(s.state, State::Running { .. })),
    );
    f.insert(
        "container".into(),
        json!(s.inst.as_ref().and_then(|i| i.container.clone())),
    );
    f.insert(
        "image".into(),
        json!(s.inst.as_ref().and_then(|i| i.image.clone())),
    );
    f.insert("url".into(), Value::Null);
    f.insert("pid".into(), Value::Null);
    match (&s.state, &s.inst) {
        (State::Running { pid }, Some(inst)) => {
            cx.ui.say(&format!(
                "runtime up — {} ({})",
                inst.url(),
                describe(inst, *pid)
            ));
            cx.ui
                .say(&format!("discovery: {}", s.at.discovery.display()));
            f.insert("url".into(), json!(inst.url()));
            f.insert("pid".into(), json!(pid));
        }
        (State::Stopped { why }, _) => {
            cx.ui.say(&format!(
                "runtime stopped — {why}; `apply` restarts it, `logs` shows why it stopped"
            ));
            f.insert("reason".into(), json!(why));
        }
        (State::Gone, Some(inst)) => cx.ui.say(&format!(
            "runtime gone — the recorded {} engine no longer exists; `apply` starts a new one",
            inst.backend.name()
        )),
        _ => cx.ui.say(&format!(
            "runtime down — nothing running for `{}` (data at {})",
            d.id,
            s.at.data.display()
        )),
    }
    if !s.instances.is_empty() {
        scaled_status(cx, &s.instances, &mut f);
    }
    Ok(Outcome { code: 0, fields: f })
}

/// `SCALE` > 1: one line per instance, and `instances: [{index, url, pid, discovery,
/// healthy}]` (SPEC §18 "Local SCALE"); the top-level fields are instance 1's.
fn scaled_status(cx: &Ctx, members: &[crate::local::scale::Member], f: &mut Map<String, Value>) {
    let mut list = Vec::new();
    for m in members {
        let state = match (&m.url, m.pid, m.healthy) {
            (Some(url), _, true) => format!("healthy — {url}"),
            (Some(url), Some(_), false) => format!("running, not healthy — {url}"),
            _ => "down — `apply` starts it".to_string(),
        };
        cx.ui.say(&format!("  instance {}: {state}", m.index));
        list.push(json!({
            "index": m.index,
            "url": m.url,
            "pid": m.pid,
            "discovery": m.discovery.display().to_string(),
            "healthy": m.healthy,
        }));
    }
    f.insert("instances".into(), Value::Array(list));
}

/// `url` prints the bare URL on stdout (for `$(…)`), local and cloud alike.
pub fn url(cx: &Ctx, loaded: &Loaded, d: &Deployment) -> Verdict {
    let paths = paths(loaded, d);
    let (url, mut fields) = if d.place == Place::Cloud {
        let recipes = loaded.recipes.clone()?;
        let url = cloud(cx, loaded, d, &paths, &recipes).url()?;
        (url, super::into_map(json!({ "id": d.id })))
    } else {
        let (at, inst, _) = local(cx, loaded, d, &paths)
            .running()
            .map_err(super::local_failure_in(cx, loaded))?;
        (inst.url(), local_fields(&at))
    };
    if !cx.ui.json {
        crate::ui::out(&format!("{url}\n"));
    }
    fields.insert("url".into(), json!(url));
    Ok(Outcome { code: 0, fields })
}

/// `logs`: the engine's log on stdout; with `--json`, carried as `log` (local) or
/// `output` (cloud).
pub fn logs(cx: &Ctx, loaded: &Loaded, d: &Deployment) -> Verdict {
    let paths = paths(loaded, d);
    if d.place == Place::Cloud {
        let recipes = loaded.recipes.clone()?;
        let output = cloud(cx, loaded, d, &paths, &recipes).show(Action::Logs)?;
        return Ok(Outcome::ok(
            json!({ "id": d.id, "provider": d.provider, "output": output }),
        ));
    }
    let (at, text) = local(cx, loaded, d, &paths)
        .logs()
        .map_err(super::local_failure_in(cx, loaded))?;
    if !cx.ui.json {
        crate::ui::out(&text);
    }
    let mut fields = local_fields(&at);
    fields.insert("log".into(), json!(text));
    Ok(Outcome { code: 0, fields })
}
