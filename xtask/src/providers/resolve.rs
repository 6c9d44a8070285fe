//! Finding recipes: three rungs, first hit wins (SPEC §7.3).
//!
//! 1. `WB_PROVIDERS_DIR` → that directory (it must hold `_recipe.sh`);
//! 2. walking up from the working directory to a `recipes/_recipe.sh`;
//! 3. the recipes compiled into this binary, written under the app dir's `providers/`.
//!
//! A provider exists iff `<root>/<name>/bootstrap.sh` is a file.

use std::path::{Path, PathBuf};

use super::header::{self, Header};
use crate::core::names;
use crate::edge::Edge;

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
            if !dir.is_dir() {
                return Err(format!(
                    "WB_PROVIDERS_DIR={} is not a directory",
                    dir.display()
                ));
            }
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

    /// From the captured working directory and environment.
    pub fn from_edge(edge: &Edge, app_dir: &Path) -> Result<Recipes, String> {
        let providers = edge.vars.os("WB_PROVIDERS_DIR").map(PathBuf::from);
        Recipes::locate(&edge.cwd, providers.as_deref(), app_dir)
    }

    /// When `provider` has a recipe in a root that lacks the spine (`WB_PROVIDERS_DIR`,
    /// or a `recipes/` directory walking up from `cwd`, which the rungs skip for want of
    /// `_recipe.sh`): the message that says so (SPEC §18), instead of "no recipe".
    pub fn spineless(cwd: &Path, providers_dir: Option<&Path>, provider: &str) -> Option<String> {
        if !names::is_slug(provider) {
            return None;
        }
        let roots = providers_dir
            .map(Path::to_path_buf)
            .into_iter()
            .chain(cwd.ancestors().map(|d| d.join("recipes")));
        for root in roots {
            if root.join(provider).join("bootstrap.sh").is_file()
                && !root.join("_recipe.sh").is_file()
            {
                return Some(format!(
                    "provider `{provider}` has no spine beside it — copy _recipe.sh into {}, or remove the root to use the bundled spine",
                    root.display()
                ));
            }
        }
        None
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
        names::is_slug(provider) && self.providers().iter().any(|p| p == provider)
    }

    /// `<root>/<provider>/bootstrap.sh`, refusing any provider that is not a plain name:
    /// the validator already refused it, and this check keeps a path like `../x` from
    /// ever being built here, whatever the caller.
    pub fn bootstrap(&self, provider: &str) -> Result<PathBuf, String> {
        if !names::is_slug(provider) {
            return Err(format!(
                "provider `{provider}` is not a plain name ({}); refusing to look for its recipe",
                names::SLUG_RULE
            ));
        }
        Ok(self.root.join(provider).join("bootstrap.sh"))
    }

    /// The recipe as it would run (spine + bootstrap.sh): bundled text, or the files on
    /// disk. Part of the applied fingerprint, so an edited recipe is a change.
    pub fn text(&self, provider: &str) -> Option<String> {
        if self.rung == Rung::Bundled {
            let want = format!("{provider}/bootstrap.sh");
            let pick = |path: &str| BUNDLED.iter().find(|(p, _)| *p == path).map(|(_, t)| *t);
            return Some(format!("{}{}", pick("_recipe.sh")?, pick(&want)?));
        }
        let spine = std::fs::read_to_string(self.root.join("_recipe.sh")).ok()?;
        let boot = std::fs::read_to_string(self.bootstrap(provider).ok()?).ok()?;
        Some(format!("{spine}{boot}"))
    }

    /// The header of `provider`'s recipe, when its text can be read.
    pub fn header(&self, provider: &str) -> Result<Header, String> {
        let path = self.bootstrap(provider)?;
        let text = match self.rung {
            Rung::Bundled => {
                let want = format!("{provider}/bootstrap.sh");
                BUNDLED
                    .iter()
                    .find(|(p, _)| *p == want)
                    .map(|(_, t)| t.to_string())
                    .ok_or_else(|| self.unknown(provider))?
            }
            _ => std::fs::read_to_string(&path).map_err(|e| {
                format!(
                    "no recipe for provider `{provider}`: cannot read {}: {e}",
                    path.display()
                )
            })?,
        };
        header::scan(&text, provider).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The message for a provider with no recipe: where it was expected, and which exist.
    pub fn unknown(&self, provider: &str) -> String {
        let known = self.providers();
        format!(
            "no provider recipe for `{provider}` — expected {}/{provider}/bootstrap.sh; known providers: {} (WB_PROVIDERS_DIR, repo, or bundled)",
            self.root.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )
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
