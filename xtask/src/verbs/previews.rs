//! Previews (SPEC §14, §18): `--preview NAME` on plan/apply/status/verify/url/logs/down
//! turns the loaded deployment into its preview — ID `<id>-<name>`, APP `<app>-<name>`,
//! its own state dir — whose deploy env falls back to the base deployment's secret
//! store, except the base's `WB_PUBLIC_BEARER` and `WB_SIGNING_KEY` (each preview makes
//! its own). `previews [FILE]` lists a file's previews with their last apply time.

use serde_json::json;

use super::{Ctx, Failure, Outcome, Verdict};
use crate::core::credentials::{BEARER, SIGNING_KEY};
use crate::core::deployment::Deployment;
use crate::load::Loaded;
use crate::state::{self, Paths, releases, store};

/// The file in a preview's state dir naming its base deployment.
pub const MARKER: &str = "preview-of";

/// The loaded deployment as its preview `name` (an invalid file is left as it is: the
/// verb reports it).
pub fn derive(cx: &Ctx, mut loaded: Loaded, name: &str, applying: bool) -> Result<Loaded, Failure> {
    let Some(d) = loaded.deployment() else {
        return Ok(loaded);
    };
    let p = crate::core::preview::derive(d, name)?;
    let base = Paths::for_id(&loaded.app_dir, &d.id)
        .store()
        .load()
        .unwrap_or_default();
    let inherited = base
        .into_iter()
        .filter(|(n, _)| n != BEARER && n != SIGNING_KEY);
    let own = Paths::for_id(&loaded.app_dir, &p.id);
    let deploy_env = store::env_only(&cx.edge.vars)
        .with_store(inherited)
        .with_store(own.store().load()?);
    if applying {
        own.ensure()?;
        state::atomic_write(
            &own.dir.join(MARKER),
            format!("{}\n", d.id).as_bytes(),
            0o600,
        )?;
    }
    loaded.id = p.id.clone();
    loaded.deploy_env = deploy_env;
    loaded.checked.deployment = Some(p);
    Ok(loaded)
}

/// `previews [FILE]`: the state dirs whose marker names this deployment.
pub fn run(cx: &Ctx, loaded: &Loaded, d: &Deployment) -> Verdict {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(&loaded.app_dir)
        .into_iter()
        .flatten()
        .flatten();
    for entry in entries {
        let dir = entry.path();
        let base = std::fs::read_to_string(dir.join(MARKER)).unwrap_or_default();
        if base.trim() != d.id {
            continue;
        }
        let id = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = id.strip_prefix(&format!("{}-", d.id)).map(str::to_string) else {
            continue;
        };
        let last = releases::list(&dir).last().map(|r| r.time.clone());
        found.push((name, id, last, releases::current(&dir).is_some()));
    }
    found.sort();
    if found.is_empty() {
        cx.ui.say(&format!(
            "no previews of {} — `{} apply {} --preview NAME` makes one",
            d.id, cx.edge.program, loaded.shown
        ));
    }
    for (name, id, last, applied) in &found {
        cx.ui.say(&format!(
            "  {name:<16} {id:<24} last apply {}{}",
            last.as_deref().unwrap_or("never"),
            if *applied { "" } else { " (down)" }
        ));
    }
    Ok(Outcome::ok(json!({
        "id": d.id,
        "previews": found
            .iter()
            .map(|(name, id, last, applied)| json!({
                "name": name,
                "id": id,
                "last_apply": last,
                "applied": applied,
            }))
            .collect::<Vec<_>>(),
    })))
}
