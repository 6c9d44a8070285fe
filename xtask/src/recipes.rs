//! Finding recipes: three rungs, first hit wins (SPEC §7.3).
//!
//! 1. `WB_PROVIDERS_DIR` → that directory (it must hold `_recipe.sh`);
//! 2. walking up from the working directory to a `recipes/_recipe.sh`;
//! 3. the recipes compiled into this binary, written under the app dir's `providers/`.
//!
//! A provider exists iff `<root>/<name>/bootstrap.sh` is a file.

use std::path::{Path, PathBuf};

mod bundled {
    include!(concat!(env!("OUT_DIR"), "/bundled.rs"));
}
pub use bundled::BUNDLED;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rung {
    ProvidersDir,
    Repo,
    Bundled,
}

impl Rung {
    pub fn describe(self) -> &'static str {
        match self {
            Rung::ProvidersDir => "WB_PROVIDERS_DIR",
            Rung::Repo => "repo (walked up from the working directory)",
            Rung::Bundled => "bundled (compiled into the kit)",
        }
    }
}

/// Where recipes come from for this run.
#[derive(Debug, Clone)]
pub struct Recipes {
    pub root: PathBuf,
    pub rung: Rung,
}

impl Recipes {
    /// Finds the recipes root without writing anything (validate and plan are read-only).
    pub fn locate(
        cwd: &Path,
        providers_dir: Option<&Path>,
        app_dir: &Path,
    ) -> Result<Recipes, String> {
        if let Some(dir) = providers_dir {
            if !dir.join("_recipe.sh").is_file() {
                return Err(format!(
                    "WB_PROVIDERS_DIR={} has no _recipe.sh — point it at a directory holding the spine and <provider>/bootstrap.sh, or unset it",
                    dir.display()
                ));
            }
            return Ok(Recipes {
                root: dir.to_path_buf(),
                rung: Rung::ProvidersDir,
            });
        }
        for dir in cwd.ancestors() {
            let candidate = dir.join("recipes");
            if candidate.join("_recipe.sh").is_file() {
                return Ok(Recipes {
                    root: candidate,
                    rung: Rung::Repo,
                });
            }
        }
        Ok(Recipes {
            root: app_dir.join("providers"),
            rung: Rung::Bundled,
        })
    }

    /// From the process's working directory and environment.
    pub fn from_env(app_dir: &Path) -> Result<Recipes, String> {
        let cwd = std::env::current_dir()
            .map_err(|e| format!("cannot read the working directory: {e}"))?;
        let providers = std::env::var_os("WB_PROVIDERS_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        Recipes::locate(&cwd, providers.as_deref(), app_dir)
    }

    /// Every provider with a `bootstrap.sh`, sorted.
    pub fn providers(&self) -> Vec<String> {
        if self.rung == Rung::Bundled {
            let mut names: Vec<String> = BUNDLED
                .iter()
                .filter_map(|(path, _)| path.strip_suffix("/bootstrap.sh"))
                .filter(|name| !name.contains('/'))
                .map(str::to_string)
                .collect();
            names.sort();
            return names;
        }
        let mut names: Vec<String> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("bootstrap.sh").is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }

    /// Whether `provider` (a plain name, already validated) has a recipe.
    pub fn has(&self, provider: &str) -> bool {
        is_plain_name(provider) && self.providers().iter().any(|p| p == provider)
    }

    pub fn bootstrap(&self, provider: &str) -> PathBuf {
        self.root.join(provider).join("bootstrap.sh")
    }

    /// For the bundled rung, writes the compiled-in recipes under the app dir, each file
    /// atomically, on every run (so they always match this binary).
    pub fn materialize(&self) -> Result<(), String> {
        if self.rung != Rung::Bundled {
            return Ok(());
        }
        for (rel, contents) in BUNDLED {
            let path = self.root.join(rel);
            let dir = path.parent().expect("a bundled path has a parent");
            crate::state::ensure_private_dir(dir)?;
            crate::state::atomic_write(&path, contents.as_bytes(), 0o644)?;
        }
        Ok(())
    }
}

/// `^[a-z0-9][a-z0-9-]*$`: a provider name is a directory name, never a path.
pub fn is_plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}
