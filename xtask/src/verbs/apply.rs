//! `apply`: converge — locally through a backend, in the cloud through the provider's
//! recipe — executing the plan `plan` shows. Also `local`, the zero-config apply.

use serde_json::json;

use super::{Ctx, Outcome, Verdict, local_failure, local_fields, paths};
use crate::core::deployment::{Deployment, Place};
use crate::load::Loaded;
use crate::local::{Local, Up};
use crate::state::{self, store};

pub fn run(cx: &Ctx, loaded: &Loaded, d: &Deployment, force: bool) -> Verdict {
    let paths = paths(loaded, d);
    if let Some(r) = state::releases::current(&paths.dir)
        && let Some(to) = r.rollback_to
    {
        cx.ui.say(&format!(
            "warning: release {} is a rollback to release {to} — this apply replaces it with what {} says (the file is the source of truth)",
            r.number, loaded.shown
        ));
    }
    match d.place {
        Place::Local => {
            let local = super::local(cx, loaded, d, &paths);
            let up = local.apply(force).map_err(local_failure)?;
            outlives(cx, &up, Some(&loaded.shown));
            Ok(local_outcome(&up))
        }
        Place::Cloud => {
            let recipes = loaded.recipes.clone()?;
            let cloud = super::cloud(cx, loaded, d, &paths, &recipes);
            let done = cloud.apply(force)?;
            if done.changed {
                cx.ui
                    .say(&cx.ui.green(&format!("applied — {}", d.summary())));
            }
            // After `up` the recipe printed its `url:` line itself (streamed on stdout).
            if !done.changed && !cx.ui.json {
                crate::ui::out(&format!("url: {}\n", done.url));
            }
            Ok(Outcome::ok(json!({
                "id": d.id,
                "provider": d.provider,
                "bearer": done.bearer,
                "changed": done.changed,
                "changes": done.changes,
                "forced": done.forced,
                "url": done.url,
            })))
        }
    }
}

/// A process or microVM engine outlives the kit: say how to stop it, naming the file as
/// given (`None`: the zero-config deployment, which `down` with no FILE finds).
fn outlives(cx: &Ctx, up: &Up, file: Option<&str>) {
    if up.inst.backend.is_container() || up.action == crate::local::UpAction::Unchanged {
        return;
    }
    let down = match file {
        Some(file) => format!("down {}", shell_word(file)),
        None => "down".to_string(),
    };
    cx.ui.say(&format!(
        "  it outlives this command; `{} {down}` stops it",
        cx.program()
    ));
}

/// `word` as one shell word (quoted only when it must be).
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:@%=,".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn local_outcome(up: &Up) -> Outcome {
    let mut fields = local_fields(&up.at);
    fields.insert("url".into(), json!(up.inst.url()));
    fields.insert("pid".into(), json!(up.pid.or(up.inst.pid)));
    fields.insert("container".into(), json!(up.inst.container));
    fields.insert("image".into(), json!(up.inst.image));
    fields.insert("action".into(), json!(up.action.as_str()));
    fields.insert("changes".into(), json!(up.changes));
    Outcome { code: 0, fields }
}

/// `local`: a zero-config local engine, no file needed — an implicit deployment with id
/// `local` and every default, applied.
pub fn zero_config(cx: &Ctx) -> Verdict {
    let app_dir = state::app_dir(&cx.edge.vars)?;
    let d = Deployment::new("local", Place::Local);
    let paths = state::Paths::for_id(&app_dir, &d.id);
    let deploy_env = store::capture(&cx.edge.vars, &paths.store()).unwrap_or_else(|problem| {
        cx.ui.say(&format!("warning: {problem}"));
        store::env_only(&cx.edge.vars)
    });
    cx.ui.say(&format!(
        "valid — {} (zero-config, id `local`)",
        d.summary()
    ));
    let local = Local {
        d: &d,
        deploy_env: &deploy_env,
        paths: &paths,
        edge: cx.edge,
        report: &cx.ui,
        lock_wait: cx.lock_wait,
    };
    let up = local.apply(false).map_err(local_failure)?;
    // With no FILE (and no ./deployment.org), `down`, `status`, `url`… find this one.
    outlives(cx, &up, None);
    Ok(local_outcome(&up))
}
