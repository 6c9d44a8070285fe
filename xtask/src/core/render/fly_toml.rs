//! fly.toml, synthesized from the deployment (SPEC §6, §13.2); never a file in the
//! project.
//!
//! Rendered through the `toml` crate's serializer, so a drawer value is always one
//! quoted string and can never inject a key or a table. Every key and value type is the
//! one flyctl's `internal/appconfig` defines (read at superfly/flyctl
//! ad0172face303b77584eea95b46fa3ddc61d5ddd, v0.4.87), cited below.

use toml::{Table, Value};

use crate::core::deployment::{Axis, Deployment, Place, Size};
use crate::core::engine_env::DATA_DIR;

/// The volume that holds `registry.db`; what makes scale-to-zero safe.
pub const VOLUME: &str = "wbdata";

/// The path a platform probes without the bearer (the engine's `/livez`, SPEC §9.4).
pub const HEALTH_PATH: &str = "/livez";

/// The fly.toml for a cloud deployment; `None` for a local one or one without the app
/// name and region the file needs (the validator has refused those). `from_source`: the
/// recipe builds the app from a Dockerfile, so the file names no image.
pub fn render(d: &Deployment, from_source: bool) -> Option<String> {
    if d.place != Place::Cloud {
        return None;
    }
    let mut root = Table::new();
    // appconfig/config.go Config: `app`, `primary_region` (strings).
    root.insert("app".into(), Value::String(d.app.clone()?));
    root.insert("primary_region".into(), Value::String(d.region.clone()?));

    // The app-build path needs a file without `[build] image`: flyctl deploys `--image`,
    // else `[build] image`, and builds a Dockerfile only when neither is set (flyctl
    // internal/command/deploy/deploy_build.go fetchImageRef).
    if !from_source {
        let mut build = Table::new();
        build.insert("image".into(), Value::String(d.image.clone()));
        root.insert("build".into(), Value::Table(build));
    }

    // appconfig/config.go Deploy: `strategy` (string; deploy/machines_deploymachinesapp.go
    // switches on "bluegreen", "immediate", "canary", "rolling").
    let mut deploy = Table::new();
    deploy.insert("strategy".into(), Value::String(d.strategy.as_str().into()));
    root.insert("deploy".into(), Value::Table(deploy));

    // appconfig/config.go Mount (`source`, `destination`): only one machine's worth of
    // data lives on a volume — several instances share Postgres and S3 instead.
    if d.needs_volume() {
        let mut mounts = Table::new();
        mounts.insert("source".into(), Value::String(VOLUME.into()));
        mounts.insert("destination".into(), Value::String(DATA_DIR.into()));
        root.insert("mounts".into(), Value::Table(mounts));
    }

    root.insert("http_service".into(), Value::Table(http_service(d)));
    if let Some(size) = d.size {
        root.insert("vm".into(), Value::Array(vec![Value::Table(vm(size))]));
    }
    Some(toml::to_string(&root).expect("a table of strings, integers and booleans serializes"))
}

/// appconfig/service.go HTTPService: `internal_port` (int), `force_https` (bool),
/// `auto_stop_machines` (fly-go MachineAutostop, text "off" | "stop" | "suspend"),
/// `auto_start_machines` (bool), `min_machines_running` (int), `checks`
/// ([]ServiceHTTPCheck: `method`, `path` strings; `interval`, `timeout`, `grace_period`
/// fly.Duration strings).
fn http_service(d: &Deployment) -> Table {
    use crate::core::deployment::AutoStop;
    let mut http = Table::new();
    http.insert("internal_port".into(), Value::Integer(d.port.into()));
    http.insert("force_https".into(), Value::Boolean(true));
    http.insert(
        "auto_stop_machines".into(),
        Value::String(d.auto_stop.as_str().into()),
    );
    http.insert("auto_start_machines".into(), Value::Boolean(true));
    // Always-on keeps every instance running; otherwise idle machines may all stop.
    let min = if d.auto_stop == AutoStop::Off {
        d.scale
    } else {
        0
    };
    http.insert("min_machines_running".into(), Value::Integer(min.into()));
    let mut check = Table::new();
    check.insert("method".into(), Value::String("GET".into()));
    check.insert("path".into(), Value::String(HEALTH_PATH.into()));
    check.insert("interval".into(), Value::String("15s".into()));
    check.insert("timeout".into(), Value::String("5s".into()));
    check.insert("grace_period".into(), Value::String("10s".into()));
    http.insert("checks".into(), Value::Array(vec![Value::Table(check)]));
    http
}

/// appconfig/config.go Compute (`[[vm]]`): `memory` (a size string, parsed by
/// helpers.ParseSize into MiB, appconfig/machines.go), and fly-go MachineGuest inline:
/// `cpus` (int), `cpu_kind` (string).
fn vm(size: Size) -> Table {
    let mut vm = Table::new();
    let mb = size.memory_mb();
    let memory = if mb.is_multiple_of(1024) {
        format!("{}gb", mb / 1024)
    } else {
        format!("{mb}mb")
    };
    vm.insert("memory".into(), Value::String(memory));
    vm.insert("cpus".into(), Value::Integer(size.cpus().into()));
    vm.insert("cpu_kind".into(), Value::String("shared".into()));
    vm
}
