//! fly.toml, synthesized from the deployment (SPEC §6); never a file in the project.
//!
//! Rendered through the `toml` crate's serializer, so a drawer value is always one
//! quoted string and can never inject a key or a table.

use toml::{Table, Value};

use crate::core::deployment::{Deployment, Place};
use crate::core::engine_env::DATA_DIR;

/// The volume that holds `registry.db`; what makes scale-to-zero safe.
pub const VOLUME: &str = "wbdata";

/// The fly.toml for a cloud deployment; `None` for a local one or one without the app
/// name and region the file needs (the validator has refused those). `from_source`: the
/// recipe builds the app from a Dockerfile, so the file names no image.
pub fn render(d: &Deployment, from_source: bool) -> Option<String> {
    if d.place != Place::Cloud {
        return None;
    }
    let mut root = Table::new();
    root.insert("app".into(), Value::String(d.app.clone()?));
    root.insert("primary_region".into(), Value::String(d.region.clone()?));

    // The app-build path needs a file without `[build] image`:
    // flyctl deploys `--image`, else `[build] image`, and builds a Dockerfile only when
    // neither is set (flyctl internal/command/deploy/deploy_build.go fetchImageRef).
    if !from_source {
        let mut build = Table::new();
        build.insert("image".into(), Value::String(d.image.clone()));
        root.insert("build".into(), Value::Table(build));
    }

    let mut mounts = Table::new();
    mounts.insert("source".into(), Value::String(VOLUME.into()));
    mounts.insert("destination".into(), Value::String(DATA_DIR.into()));
    root.insert("mounts".into(), Value::Table(mounts));

    let mut http = Table::new();
    http.insert("internal_port".into(), Value::Integer(d.port.into()));
    http.insert("force_https".into(), Value::Boolean(true));
    http.insert("auto_stop_machines".into(), Value::String("stop".into()));
    http.insert("auto_start_machines".into(), Value::Boolean(true));
    http.insert("min_machines_running".into(), Value::Integer(0));
    root.insert("http_service".into(), Value::Table(http));

    Some(toml::to_string(&root).expect("a table of strings, integers and booleans serializes"))
}
