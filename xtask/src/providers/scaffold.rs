//! `recipe new NAME` (SPEC §15): a recipe skeleton with the v2 header, the eight hooks
//! as stubs that fail with "not written yet", and the spine beside it when the
//! directory has none. The result passes shellcheck; `recipe check` names every stub.

use std::path::{Path, PathBuf};

use crate::core::names;

/// The stub recipe for `name`.
pub fn stub(name: &str) -> String {
    let hooks = super::check::HOOKS
        .iter()
        .map(|hook| {
            format!(
                "{hook}() {{\n  wb_die \"{hook}: not written yet (see {name}/bootstrap.sh and the recipes README)\"\n}}\n"
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        r#"#!/usr/bin/env bash
# wb-cli:
# wb-requires: APP
# wb-properties:
# wb-supports:
# wb-passthrough:
# wb-readonly:
#
# {name} recipe — written with `recipe new {name}`; prove it with `recipe check {name}`.
#
# Header (read by the kit, never run):
#   wb-cli         the provider CLIs this recipe runs (`a|b`: either will do)
#   wb-requires    drawer keys a deployment must set (APP, REGION, your properties)
#   wb-properties  your own drawer keys, NAME[:type], as WB_PROP_NAME
#                  (types: string dns-label hostname ssh-target port https-url path)
#   wb-supports    optional kit keys you honour (SCALE REGIONS SIZE AUTO_STOP STRATEGY)
#   wb-passthrough your CLI's credential variables, passed when set
#   wb-readonly    CLI command prefixes that change nothing (`acme status|acme logs`)
#
# Each hook must be idempotent and fail loudly; values never in argv (pipe
# wb_engine_dotenv or wb_engine_records into your CLI); `provider_status`
# prints `state: {{"present": …, "image": …, "instances": …, "regions": […]}}`
# and reports "present": false (exit 0) when the app does not exist.

set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../_recipe.sh
source "$WB_PROVIDERS_DIR/_recipe.sh"

WB_RECIPE_PLACE={name}

{hooks}
wb_recipe_run
"#
    )
}

/// What `recipe new` wrote.
pub struct Written {
    pub recipe: PathBuf,
    /// The spine, when one was copied beside the recipe.
    pub spine: Option<PathBuf>,
}

/// Writes `dir/name/bootstrap.sh` (refusing an existing one without `force`) and
/// `dir/_recipe.sh` when `dir` has none.
pub fn write(dir: &Path, name: &str, force: bool, spine: &str) -> Result<Written, String> {
    if !names::is_slug(name) {
        return Err(format!(
            "`{name}` is not a usable provider name — it must match {} (it is the `PROVIDER:` value)",
            names::SLUG_RULE
        ));
    }
    let recipe = dir.join(name).join("bootstrap.sh");
    if recipe.exists() && !force {
        return Err(format!(
            "{} already exists — pass --force to overwrite it",
            recipe.display()
        ));
    }
    let parent = recipe.parent().expect("a recipe path has a parent");
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    crate::state::atomic_write(&recipe, stub(name).as_bytes(), 0o755)?;
    let spine_path = dir.join("_recipe.sh");
    let spine = if spine_path.exists() {
        None
    } else {
        crate::state::atomic_write(&spine_path, spine.as_bytes(), 0o644)?;
        Some(spine_path)
    };
    Ok(Written { recipe, spine })
}
