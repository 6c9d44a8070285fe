//! Artifacts the kit renders for a recipe that asks for them (`# wb-artifacts:`, SPEC
//! §13.1): pure functions of the deployment, golden-tested. None is ever written into
//! the project; a recipe gets each as a file path in a private temp dir.

pub mod fly_toml;
pub mod k8s;

use crate::core::deployment::Deployment;

/// An artifact a recipe may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Artifact {
    FlyToml,
    K8sManifests,
}

impl Artifact {
    pub const ALL: &[Artifact] = &[Artifact::FlyToml, Artifact::K8sManifests];

    /// The name on the `# wb-artifacts:` line and in `plan --json`'s `artifacts`.
    pub fn name(self) -> &'static str {
        match self {
            Artifact::FlyToml => "fly-toml",
            Artifact::K8sManifests => "k8s-manifests",
        }
    }

    pub fn parse(name: &str) -> Option<Artifact> {
        Artifact::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// The variable that hands the rendered file's path to the recipe.
    pub fn env_var(self) -> &'static str {
        match self {
            Artifact::FlyToml => "WB_FLY_TOML",
            Artifact::K8sManifests => "WB_K8S_MANIFESTS",
        }
    }

    /// The file name inside the private temp dir.
    pub fn file_name(self) -> &'static str {
        match self {
            Artifact::FlyToml => "fly.toml",
            Artifact::K8sManifests => "manifests.json",
        }
    }

    /// The rendered text; `None` when the deployment lacks what the artifact needs
    /// (the validator has refused those). `from_source`: the recipe builds the app from
    /// source (a Dockerfile), so no image is named.
    pub fn render(self, d: &Deployment, from_source: bool) -> Option<String> {
        match self {
            Artifact::FlyToml => fly_toml::render(d, from_source),
            // The images are pulled, never built by the cluster: `from_source` does not
            // apply. The env digest is filled in by the recipe (k8s::ENV_DIGEST_PLACEHOLDER).
            Artifact::K8sManifests => k8s::render(d, &k8s::K8sInputs::of(d)),
        }
    }
}
