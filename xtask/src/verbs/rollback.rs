//! `rollback [--to N]`: re-apply release N (default: the previous one) — its image and
//! artifacts, today's secrets — and record it as a new release (SPEC §14).

use serde_json::json;

use super::{Ctx, Outcome, Verdict, local_failure, paths};
use crate::core::deployment::{Deployment, Place};
use crate::load::Loaded;
use crate::state::releases;

pub fn run(cx: &Ctx, loaded: &Loaded, d: &Deployment, to: Option<u32>) -> Verdict {
    let paths = paths(loaded, d);
    let (to, image, changed, url) = match d.place {
        Place::Local => {
            let local = super::local(cx, loaded, d, &paths);
            let done = local.rollback(to).map_err(local_failure)?;
            (done.to, done.image, done.changed, done.up.inst.url())
        }
        Place::Cloud => {
            let recipes = loaded.recipes.clone()?;
            let cloud = super::cloud(cx, loaded, d, &paths, &recipes);
            let done = cloud.rollback(to)?;
            (done.to, done.image, done.changed, done.url)
        }
    };
    let number = releases::current(&paths.dir).map(|r| r.number);
    cx.ui.say(&cx.ui.green(&format!(
        "rolled back — {} runs release {to}'s image {image} (recorded as release {})",
        d.id,
        number.map_or("?".into(), |n| n.to_string())
    )));
    cx.ui.say(&format!(
        "  the next `{} apply {}` replaces it with what the file says",
        cx.edge.program, loaded.shown
    ));
    Ok(Outcome::ok(json!({
        "id": d.id,
        "rolled_back_to": to,
        "release": number,
        "image": image,
        "changed_env": changed,
        "url": url,
    })))
}
