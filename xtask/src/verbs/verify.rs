//! `verify`: prove the live engine answers `GET /health` with 200 — locally through the
//! discovery file's token, in the cloud with the bearer through curl.

use serde_json::json;

use super::{Ctx, Failure, Outcome, Verdict, local_fields, paths};
use crate::core::deployment::{Deployment, Place};
use crate::error::Error;
use crate::load::Loaded;

pub fn run(cx: &Ctx, loaded: &Loaded, d: &Deployment) -> Verdict {
    let paths = paths(loaded, d);
    if d.place == Place::Local {
        let local = super::local(cx, loaded, d, &paths);
        let (at, url) = local
            .verify()
            .map_err(super::local_failure_in(cx, loaded))?;
        cx.ui.say(
            &cx.ui
                .green(&format!("runtime healthy — {url}/health → 200")),
        );
        let mut fields = local_fields(&at);
        fields.insert("url".into(), json!(url));
        fields.insert("healthy".into(), json!(true));
        fields.insert("status".into(), json!(200));
        return Ok(Outcome { code: 0, fields });
    }
    let recipes = loaded.recipes.clone()?;
    let cloud = super::cloud(cx, loaded, d, &paths, &recipes);
    let (base, health, code) = cloud.verify()?;
    let fields = json!({ "id": d.id, "url": base, "health": health, "status": code });
    if code == 200 {
        cx.ui.say(
            &cx.ui
                .green(&format!("verified — GET {health} answered 200")),
        );
        return Ok(Outcome::ok(fields));
    }
    let hint = match code {
        0 => {
            "no answer (is it deployed? `apply` first; a stopped machine may take a few seconds to start)"
        }
        401 | 403 => {
            "the engine refused the bearer — it runs with another WB_PUBLIC_BEARER than your store's; run `apply --force`"
        }
        _ => "the engine is not healthy — see `logs`",
    };
    Err(Failure {
        error: Error::Failed(format!("GET {health} answered {code}: {hint}")),
        fields: super::into_map(fields),
    })
}
