//! One plan: what `apply` would change, computed once from the deployment, the deploy
//! env and the last-applied record. `plan` renders it; `apply` executes it — for the
//! local place and the cloud alike.

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest, Sha256};

use crate::core::credentials::BEARER;
use crate::core::deployment::{Axis, Deployment, Place};
use crate::core::engine_env::{EngineEnv, engine_env};
use crate::core::render::Artifact;
use crate::core::secret::DeployEnv;

/// What the deployment would become: the inputs every `apply` converges to.
pub struct Intended {
    pub env: EngineEnv,
    /// The artifacts the recipe asked for, rendered.
    pub artifacts: BTreeMap<Artifact, String>,
    /// The recipe's text (spine + bootstrap.sh) for cloud deployments, where readable.
    pub recipe: Option<String>,
}

impl Intended {
    /// `from_source`: the recipe builds the app from source, so no artifact names an
    /// image.
    pub fn new(
        d: &Deployment,
        deploy_env: &DeployEnv,
        recipe: Option<String>,
        wanted: &[Artifact],
        from_source: bool,
    ) -> Intended {
        let artifacts = wanted
            .iter()
            .filter_map(|a| Some((*a, a.render(d, from_source)?)))
            .collect();
        Intended {
            env: engine_env(d, deploy_env),
            artifacts,
            recipe: recipe.filter(|_| d.place == Place::Cloud),
        }
    }

    /// The comparable record of this intent (values hashed with the deployment's salt).
    pub fn fingerprint(&self, d: &Deployment, salt: &[u8]) -> Fingerprint {
        let mut f = Fingerprint::default();
        f.put("place", d.place.as_str(), salt);
        f.put("image", &d.image, salt);
        if d.place == Place::Cloud {
            f.put("provider", &d.provider, salt);
        }
        for (name, value) in &self.env.0 {
            f.put(format!("env:{name}"), value.expose(), salt);
        }
        for (key, value) in shape_parts(d) {
            f.put(key, &value, salt);
        }
        for (artifact, text) in &self.artifacts {
            f.put(artifact.file_name(), text, salt);
        }
        if let Some(recipe) = &self.recipe {
            f.put("recipe", recipe, salt);
        }
        if d.place == Place::Cloud {
            for (key, value) in &d.properties {
                f.put(format!("property:{key}"), value, salt);
            }
        }
        f
    }
}

/// The shape keys (SPEC §12) that differ from their defaults, as fingerprint parts named
/// by their keys: they shape the platform, not the engine env, so a change to one is a
/// change of its own (`SCALE changed`). A default leaves no part, so a deployment that
/// never set them compares as it did before they existed.
fn shape_parts(d: &Deployment) -> Vec<(&'static str, String)> {
    use crate::core::deployment::{AutoStop, Strategy};
    let mut out = Vec::new();
    if d.scale != 1 {
        out.push(("SCALE", d.scale.to_string()));
    }
    if !d.regions.is_empty() {
        out.push(("REGIONS", d.regions.join(" ")));
    }
    if let Some(size) = d.size {
        out.push(("SIZE", size.as_str().to_string()));
    }
    if d.auto_stop != AutoStop::Stop {
        out.push(("AUTO_STOP", d.auto_stop.as_str().to_string()));
    }
    if d.strategy != Strategy::Rolling {
        out.push(("STRATEGY", d.strategy.as_str().to_string()));
    }
    out
}

/// `WB_ENV_DIGEST`: one salted digest of the whole engine env (names and values, in
/// order), so a recipe can tell that only a secret changed without seeing any value.
pub fn env_digest(env: &EngineEnv, salt: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    for (name, value) in &env.0 {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(value.expose().as_bytes());
        h.update([0]);
    }
    hex(&h.finalize())
}

/// What was applied, as comparable parts: `image`, `env:NAME` (value hashed with a
/// per-deployment salt, never stored), `fly.toml`, `provider`, `recipe`, `backend`, …
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint {
    pub parts: BTreeMap<String, String>,
}

impl Fingerprint {
    pub fn put(&mut self, part: impl Into<String>, value: &str, salt: &[u8]) {
        let mut h = Sha256::new();
        h.update(salt);
        h.update(value.as_bytes());
        self.parts.insert(part.into(), hex(&h.finalize()));
    }

    /// The parts that differ from `before`.
    pub fn diff(&self, before: &Fingerprint) -> Vec<Change> {
        let mut out = Vec::new();
        for (part, value) in &self.parts {
            match before.parts.get(part) {
                None => out.push(Change::Part(part.clone(), How::Added)),
                Some(old) if old != value => out.push(Change::Part(part.clone(), How::Changed)),
                Some(_) => {}
            }
        }
        for part in before.parts.keys() {
            if !self.parts.contains_key(part) {
                out.push(Change::Part(part.clone(), How::Removed));
            }
        }
        out
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The last successful apply of a deployment: what was intended, and what the place
/// resolved beside it (a local backend's image ID or engine binary), hashed with the
/// deployment's salt. One record per deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub intended: Fingerprint,
    pub resolved: Fingerprint,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Added,
    Changed,
    Removed,
}

impl How {
    pub fn as_str(self) -> &'static str {
        match self {
            How::Added => "added",
            How::Changed => "changed",
            How::Removed => "removed",
        }
    }
}

/// One thing `apply` would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A cloud deployment without a control-plane bearer gets one.
    GenerateBearer,
    /// Never applied from this machine.
    Create,
    /// Applied from this machine, then stopped by `down`: the next apply starts it again.
    Restart,
    /// A part of the fingerprint differs from the last apply.
    Part(String, How),
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::GenerateBearer => write!(
                f,
                "generate {BEARER} (once, never rotated): it guards the engine's control plane"
            ),
            Change::Create => {
                f.write_str("create the deployment (never applied from this machine)")
            }
            Change::Restart => {
                f.write_str("start the deployment again (stopped by `down` on this machine)")
            }
            Change::Part(part, how) => write!(f, "{part} {}", how.as_str()),
        }
    }
}

/// The plan: every change, and the fingerprint `apply` records when it succeeds.
#[derive(Debug, Clone)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// `None` when there is no salt yet (never applied; `apply` makes one).
    pub fingerprint: Option<Fingerprint>,
}

impl Plan {
    /// The plan of a deployment `down` stopped (its record is gone, so the plan says
    /// "create"): it says "start again" instead.
    pub fn after_down(mut self, stopped: bool) -> Plan {
        if stopped {
            for change in &mut self.changes {
                if *change == Change::Create {
                    *change = Change::Restart;
                }
            }
        }
        self
    }

    /// Whether the deployment is as last applied.
    pub fn unchanged(&self) -> bool {
        self.changes.is_empty()
    }

    /// The changes in words (`plan --json`'s `changes`, `apply`'s list).
    pub fn lines(&self) -> Vec<String> {
        self.changes.iter().map(Change::to_string).collect()
    }
}

/// The one comparison: the intended deployment against the last-applied record.
/// `last` is the record and the deployment's salt, when there is one.
pub fn plan(d: &Deployment, intended: &Intended, last: Option<(&Applied, &[u8])>) -> Plan {
    let mut changes = Vec::new();
    if d.place == Place::Cloud && intended.env.get(BEARER).is_none() {
        changes.push(Change::GenerateBearer);
    }
    let Some((before, salt)) = last else {
        changes.push(Change::Create);
        return Plan {
            changes,
            fingerprint: None,
        };
    };
    let fingerprint = intended.fingerprint(d, salt);
    changes.extend(fingerprint.diff(&before.intended));
    Plan {
        changes,
        fingerprint: Some(fingerprint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_names_added_changed_and_removed_parts() {
        let mut a = Fingerprint::default();
        let mut b = Fingerprint::default();
        a.put("same", "x", b"s");
        b.put("same", "x", b"s");
        a.put("changed", "1", b"s");
        b.put("changed", "2", b"s");
        a.put("added", "1", b"s");
        b.put("removed", "1", b"s");
        let lines: Vec<String> = a.diff(&b).iter().map(Change::to_string).collect();
        assert_eq!(lines, ["added added", "changed changed", "removed removed"]);
    }

    #[test]
    fn never_applied_is_create_and_a_cloud_without_bearer_generates_one() {
        let d = Deployment::new("x", Place::Cloud);
        let intended = Intended::new(&d, &DeployEnv::default(), None, &[], false);
        let p = plan(&d, &intended, None);
        assert_eq!(p.changes, [Change::GenerateBearer, Change::Create]);
        assert!(p.fingerprint.is_none());
        let salt = b"salt".as_slice();
        let record = Applied {
            intended: intended.fingerprint(&d, salt),
            resolved: Fingerprint::default(),
        };
        let again = plan(&d, &intended, Some((&record, salt)));
        assert_eq!(again.changes, [Change::GenerateBearer]);
    }
}
