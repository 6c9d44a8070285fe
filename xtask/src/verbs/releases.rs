//! `releases`: what each apply that changed something deployed (SPEC §14), oldest
//! first, the last 20; the newest is marked when it is what runs.

use serde_json::json;

use super::{Ctx, Outcome, Verdict, paths};
use crate::core::deployment::Deployment;
use crate::load::Loaded;
use crate::state::releases;

pub fn run(cx: &Ctx, loaded: &Loaded, d: &Deployment) -> Verdict {
    let paths = paths(loaded, d);
    let list = releases::list(&paths.dir);
    let current = releases::current(&paths.dir).map(|r| r.number);
    if list.is_empty() {
        cx.ui.say(&format!(
            "no releases of {} yet — `{} apply {}` records one",
            d.id, cx.edge.program, loaded.shown
        ));
    }
    for r in &list {
        let what = match r.rollback_to {
            Some(n) => format!("rollback to {n}"),
            None => r.action.clone(),
        };
        cx.ui.say(&format!(
            "{:>3}{} {}  {:<16} {}{}",
            r.number,
            if current == Some(r.number) { "*" } else { " " },
            r.time,
            what,
            r.image,
            r.image_id
                .as_deref()
                .map(|id| format!("  ({id})"))
                .unwrap_or_default()
        ));
    }
    if current.is_some() {
        cx.ui
            .say("(* = what runs now, as far as the kit applied it)");
    }
    Ok(Outcome::ok(json!({
        "id": d.id,
        "current": current,
        "releases": list.iter().map(releases::Release::to_json).collect::<Vec<_>>(),
    })))
}
