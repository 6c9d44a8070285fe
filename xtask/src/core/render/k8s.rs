//! Kubernetes manifests (`k8s-manifests`, SPEC §13.2, §18 "Kubernetes"): one JSON `List`
//! of the non-secret objects a deployment needs, built with serde_json — a drawer value
//! is always one JSON string and can never inject a field. Kubernetes reads JSON as
//! YAML's subset, so the kit needs no YAML dependency.
//!
//! The engine's Secret (`<app>-engine-env`) is not here: the recipe builds it from the
//! engine env on a pipe (§13.4), so no value is ever in this text.
//!
//! Every object passes `kubernetes-validate --strict` against the oldest and newest
//! schemas it bundles (tests/tests/k8s_schemas.rs).

use serde_json::{Value, json};

use crate::core::deployment::{Deployment, Place, Size};
use crate::core::engine_env::DATA_DIR;

/// The path the platform probes without the bearer (SPEC §9.4).
pub const HEALTH_PATH: &str = "/livez";
/// Where the engine writes its discovery file: a memory emptyDir, the root is read-only.
pub const DISCO_DIR: &str = "/disco";
/// The numeric non-root uid (and gid, and fsGroup) the engine runs as: the conventional
/// "nonroot" id of distroless images. Numeric, so `runAsNonRoot` can be checked by the
/// kubelet without reading the image's passwd (a `FROM scratch` image has none).
pub const RUN_AS: i64 = 65532;
/// The pod-template annotation that carries the salted digest of the engine env: a
/// change of a secret alone changes the template, so the pods roll.
pub const ENV_DIGEST_ANNOTATION: &str = "workbooks.sh/env-digest";
/// What the kit renders in place of the digest; the recipe substitutes `WB_ENV_DIGEST`
/// (a salted, hex digest computed at apply time — the renderer stays pure).
pub const ENV_DIGEST_PLACEHOLDER: &str = "@WB_ENV_DIGEST@";
/// `app.kubernetes.io/managed-by`.
pub const MANAGED_BY: &str = "wb-deploy";

/// What the manifests need beyond the deployment: the provider properties (SPEC §13.1)
/// and the env digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct K8sInputs<'a> {
    pub namespace: Option<&'a str>,
    pub domain: Option<&'a str>,
    pub ingress_class: Option<&'a str>,
    pub env_digest: &'a str,
}

impl<'a> K8sInputs<'a> {
    /// The inputs as the deployment's provider properties set them, with the digest
    /// left for the recipe to fill in.
    pub fn of(d: &'a Deployment) -> K8sInputs<'a> {
        K8sInputs {
            namespace: d.prop("NAMESPACE"),
            domain: d.prop("DOMAIN"),
            ingress_class: d.prop("INGRESS_CLASS"),
            env_digest: ENV_DIGEST_PLACEHOLDER,
        }
    }
}

/// The Secret the recipe creates from the engine env.
pub fn secret_name(app: &str) -> String {
    format!("{app}-engine-env")
}

/// The List, pretty-printed; `None` for a local deployment or one without `APP` (the
/// validator refuses those).
pub fn render(d: &Deployment, inputs: &K8sInputs) -> Option<String> {
    if d.place != Place::Cloud {
        return None;
    }
    let app = d.app.as_deref()?;
    let labels = json!({
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/instance": d.id,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    });
    let meta = |name: String| {
        let mut m = json!({ "name": name, "labels": labels });
        if let Some(ns) = inputs.namespace {
            m["namespace"] = json!(ns);
        }
        m
    };
    let mut items = Vec::new();
    if d.needs_volume() {
        items.push(json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": meta(format!("{app}-data")),
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": { "requests": { "storage": "1Gi" } },
            },
        }));
    }
    items.push(deployment(d, app, &labels, meta(app.to_string()), inputs));
    items.push(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(app.to_string()),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(app, d),
            "ports": [{ "name": "http", "port": 80, "targetPort": "http", "protocol": "TCP" }],
        },
    }));
    if !d.needs_volume() && d.scale > 1 {
        items.push(json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta(app.to_string()),
            "spec": { "maxUnavailable": 1, "selector": { "matchLabels": selector(app, d) } },
        }));
    }
    if let Some(domain) = inputs.domain {
        items.push(ingress(app, domain, meta(app.to_string()), inputs));
    }
    let list = json!({ "apiVersion": "v1", "kind": "List", "items": items });
    let mut text = serde_json::to_string_pretty(&list).expect("JSON values serialize");
    text.push('\n');
    Some(text)
}

/// The labels the Service, the PDB and the Deployment select the pods by.
fn selector(app: &str, d: &Deployment) -> Value {
    json!({ "app.kubernetes.io/name": app, "app.kubernetes.io/instance": d.id })
}

fn deployment(d: &Deployment, app: &str, labels: &Value, meta: Value, k: &K8sInputs) -> Value {
    // A volume mounts on one node at a time (ReadWriteOnce): the old pod must be gone
    // before the new one starts. Without one, surge one and never drop below SCALE.
    let strategy = if d.needs_volume() {
        json!({ "type": "Recreate" })
    } else {
        json!({ "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 1, "maxUnavailable": 0 } })
    };
    let mut volumes =
        vec![json!({ "name": "disco", "emptyDir": { "medium": "Memory", "sizeLimit": "1Mi" } })];
    let mut mounts = vec![json!({ "name": "disco", "mountPath": DISCO_DIR })];
    if d.needs_volume() {
        volumes.push(json!({ "name": "data", "persistentVolumeClaim": { "claimName": format!("{app}-data") } }));
        mounts.push(json!({ "name": "data", "mountPath": DATA_DIR }));
    }
    let probe = |period: u32| {
        json!({
            "httpGet": { "path": HEALTH_PATH, "port": "http" },
            "periodSeconds": period,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        })
    };
    let mut container = json!({
        "name": "engine",
        "image": d.image,
        "ports": [{ "name": "http", "containerPort": d.port, "protocol": "TCP" }],
        "envFrom": [{ "secretRef": { "name": secret_name(app) } }],
        "env": [{ "name": "WB_DISCO", "value": DISCO_DIR }],
        "readinessProbe": probe(5),
        "livenessProbe": probe(15),
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "capabilities": { "drop": ["ALL"] },
        },
        "volumeMounts": mounts,
    });
    if let Some(size) = d.size {
        container["resources"] = resources(size);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": d.scale,
            "revisionHistoryLimit": 5,
            "selector": { "matchLabels": selector(app, d) },
            "strategy": strategy,
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": { ENV_DIGEST_ANNOTATION: k.env_digest },
                },
                "spec": {
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": RUN_AS,
                        "runAsGroup": RUN_AS,
                        "fsGroup": RUN_AS,
                        "seccompProfile": { "type": "RuntimeDefault" },
                    },
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    })
}

/// SIZE → requests = limits (a Guaranteed pod: never the first evicted).
fn resources(size: Size) -> Value {
    let amounts = json!({
        "memory": format!("{}Mi", size.memory_mb()),
        "cpu": size.cpus().to_string(),
    });
    json!({ "requests": amounts, "limits": amounts })
}

fn ingress(app: &str, domain: &str, meta: Value, k: &K8sInputs) -> Value {
    let mut spec = json!({
        "tls": [{ "hosts": [domain], "secretName": format!("{app}-tls") }],
        "rules": [{
            "host": domain,
            "http": { "paths": [{
                "path": "/",
                "pathType": "Prefix",
                "backend": { "service": { "name": app, "port": { "name": "http" } } },
            }] },
        }],
    });
    if let Some(class) = k.ingress_class {
        spec["ingressClassName"] = json!(class);
    }
    json!({ "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec })
}
