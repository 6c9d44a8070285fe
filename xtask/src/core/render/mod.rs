//! Artifacts the kit renders for a recipe that asks for them (`# wb-artifacts:`, SPEC
//! §13.1): pure functions of the deployment, golden-tested. None is ever written into
//! the project; a recipe gets each as a file path in a private temp dir.

pub mod fly_toml;

use crate::core::deployment::Deployment;

/// An artifact a recipe may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Artifact {
    FlyToml,
}

impl Artifact {
    pub const ALL: &[Artifact] = &[Artifact::FlyToml];

    /// The name on the `# wb-artifacts:` line and in `plan --json`'s `artifacts`.
    pub fn name(self) -> &'static str {
        match self {
            Artifact::FlyToml => "fly-toml",
        }
    }

    pub fn parse(name: &str) -> Option<Artifact> {
        Artifact::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// The variable that hands the rendered file's path to the recipe.
    pub fn env_var(self) -> &'static str {
        match self {
            Artifact::FlyToml => "WB_FLY_TOML",
        }
    }

    /// The file name inside the private temp dir.
    pub fn file_name(self) -> &'static str {
        match self {
            Artifact::FlyToml => "fly.toml",
        }
    }

    /// The rendered text; `None` when the deployment lacks what the artifact needs
    /// (the validator has refused those). `from_source`: the recipe builds the app from
    /// source (a Dockerfile), so no image is named.
    pub fn render(self, d: &Deployment, from_source: bool) -> Option<String> {
        match self {
            Artifact::FlyToml => fly_toml::render(d, from_source),
        }
    }
}
