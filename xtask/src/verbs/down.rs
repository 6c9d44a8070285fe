//! `down`: stop the engine, keep the data. Locally the kit knows where the data is; in
//! the cloud it repeats what the recipe says it kept and destroyed, and claims nothing
//! on its own.

use serde_json::json;

use super::{Ctx, Outcome, Verdict, local_failure, local_fields, paths};
use crate::core::deployment::{Deployment, Place};
use crate::load::Loaded;

pub fn run(cx: &Ctx, loaded: &Loaded, d: &Deployment, purge: bool) -> Verdict {
    let paths = paths(loaded, d);
    if d.place == Place::Local && purge {
        return Err(format!(
            "`--purge` is for cloud deployments — a local engine's data stays in {} until you remove it yourself (after `down`)",
            paths.dir.join("data").display()
        )
        .into());
    }
    if d.place == Place::Local {
        let local = super::local(cx, loaded, d, &paths);
        let (at, was_running) = local.down().map_err(local_failure)?;
        if cx.preview.is_some() {
            return purge_preview(
                cx,
                &paths,
                d,
                super::into_map(json!({"was_running": was_running})),
            );
        }
        if at.data.exists() {
            cx.ui.say(&cx.ui.green(&format!(
                "runtime down — data preserved at {}",
                at.data.display()
            )));
        } else {
            cx.ui.say(&format!(
                "runtime down — nothing was running; no data at {}",
                at.data.display()
            ));
        }
        let mut fields = local_fields(&at);
        fields.insert("was_running".into(), json!(was_running));
        return Ok(Outcome { code: 0, fields });
    }
    let recipes = loaded.recipes.clone()?;
    let cloud = super::cloud(cx, loaded, d, &paths, &recipes);
    // A preview is disposable: `down --preview NAME` purges it (SPEC §18).
    let purge = purge || cx.preview.is_some();
    let done = cloud.down(purge)?;
    if cx.preview.is_some() {
        for line in &done.destroyed {
            cx.ui.say(&format!("  destroyed: {line}"));
        }
        let fields = super::into_map(json!({
            "provider": d.provider,
            "purge": true,
            "kept": done.kept,
            "destroyed": done.destroyed,
        }));
        return purge_preview(cx, &paths, d, fields);
    }
    cx.ui.say(&cx.ui.green(&format!(
        "down{} — {} at {}; the kit's secret store (and bearer) stay in {}",
        if purge { " --purge" } else { "" },
        d.id,
        d.provider,
        paths.dir.display()
    )));
    for line in &done.destroyed {
        cx.ui.say(&format!("  destroyed: {line}"));
    }
    for line in &done.kept {
        cx.ui.say(&format!("  kept: {line}"));
    }
    if done.kept.is_empty() && done.destroyed.is_empty() {
        cx.ui.say(&format!(
            "  the {} recipe did not report what it kept or destroyed (no `kept:`/`destroyed:` lines); check with `status`",
            d.provider
        ));
    }
    Ok(Outcome::ok(json!({
        "id": d.id,
        "provider": d.provider,
        "purge": purge,
        "kept": done.kept,
        "destroyed": done.destroyed,
    })))
}

/// The end of a preview: its state dir (store, releases, lock) goes too.
fn purge_preview(
    cx: &Ctx,
    paths: &crate::state::Paths,
    d: &Deployment,
    mut fields: serde_json::Map<String, serde_json::Value>,
) -> Verdict {
    std::fs::remove_dir_all(&paths.dir)
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(e),
        })
        .map_err(|e| {
            format!(
                "cannot remove the preview's state {}: {e}",
                paths.dir.display()
            )
        })?;
    cx.ui.say(&cx.ui.green(&format!(
        "preview {} ended — its state {} is removed",
        d.id,
        paths.dir.display()
    )));
    fields.insert("id".into(), json!(d.id));
    fields.insert("preview_ended".into(), json!(true));
    Ok(Outcome { code: 0, fields })
}
