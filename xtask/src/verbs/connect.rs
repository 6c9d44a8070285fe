//! `connect`: what a client of the engine needs — its URL and the file that holds the
//! token, never the token itself (a client reads the file; stdout may be a log). Data on
//! stdout as `NAME=value` lines, ready for an env file or `eval`.

use serde_json::json;

use super::{Ctx, Outcome, Verdict, cloud, local, local_fields, paths};
use crate::core::credentials::BEARER;
use crate::core::deployment::{Deployment, Place};
use crate::load::Loaded;

pub fn run(cx: &Ctx, loaded: &Loaded, d: &Deployment) -> Verdict {
    let paths = paths(loaded, d);
    let (url, token_file, field, mut fields) = if d.place == Place::Cloud {
        let recipes = loaded.recipes.clone()?;
        let url = cloud(cx, loaded, d, &paths, &recipes).url()?;
        let store = paths.store().path().to_path_buf();
        (
            url,
            store,
            BEARER,
            super::into_map(json!({ "id": d.id, "place": "cloud" })),
        )
    } else {
        let (at, inst, _) = local(cx, loaded, d, &paths)
            .running()
            .map_err(super::local_failure_in(cx, loaded))?;
        let discovery = at.discovery.clone();
        (inst.url(), discovery, "token", local_fields(&at))
    };
    let how = if d.place == Place::Cloud {
        format!("the value of its `{field}=` line (the kit's secret store; a JSON string)")
    } else {
        format!("its `{field}` field (the engine's discovery file: port, pid, token)")
    };
    if !cx.ui.json {
        crate::ui::out(&format!(
            "WB_ENGINE_URL={url}\nWB_ENGINE_TOKEN_FILE={}\n",
            token_file.display()
        ));
    }
    cx.ui.say(&format!(
        "the token is {how} in WB_ENGINE_TOKEN_FILE — never printed; send it as `Authorization: Bearer …`"
    ));
    fields.insert("url".into(), json!(url));
    fields.insert("token_file".into(), json!(token_file.display().to_string()));
    fields.insert("token_field".into(), json!(field));
    Ok(Outcome { code: 0, fields })
}
