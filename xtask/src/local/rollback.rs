//! `rollback` locally (SPEC §14, §18): containers run release N's image by its recorded
//! image ID (not the tag, which may point elsewhere now); the process backend runs the
//! recorded engine binary and refuses when its sha256 changed. Today's secrets; the
//! ordinary converge records the release, then it is marked as a rollback.

use super::backend::registry;
use super::{Failed, Local, Up};
use crate::core::plan::Intended;
use crate::state::{self, releases};

/// What a local rollback did.
pub struct RolledBack {
    pub up: Up,
    pub to: u32,
    pub image: String,
    pub changed: Vec<String>,
}

impl Local<'_> {
    pub fn rollback(&self, to: Option<u32>) -> Result<RolledBack, Failed> {
        let spec = self.spec();
        let fail = |e: String| self.fail(&spec, None, e);
        let target = releases::pick(&releases::list(&spec.dir), to).map_err(fail)?;
        let recorded = target.image_id.clone().ok_or_else(|| {
            fail(format!(
                "release {} recorded no image ID — it cannot be rolled back to by identity",
                target.number
            ))
        })?;
        let kind = registry::choose(self.edge).map_err(fail)?;
        let image = match recorded.rsplit_once(" sha256:") {
            Some((path, digest)) => {
                let now = super::converge::file_sha256(std::path::Path::new(path));
                if now.as_deref() != Some(&format!("sha256:{digest}")) {
                    return Err(fail(format!(
                        "release {} ran the engine binary {path} (sha256:{digest}); it is {} now — refusing to roll back to a different binary (nothing was changed)",
                        target.number,
                        now.map_or("gone".to_string(), |d| format!("changed ({d})"))
                    )));
                }
                self.d.image.clone()
            }
            None if kind.is_container() => {
                if super::backend::image::image_ids(kind.name(), &[recorded.as_str()]).is_empty() {
                    return Err(fail(format!(
                        "release {}'s image {} (ID {recorded}) is gone from {} — rebuild or pull it, then roll back again (nothing was changed)",
                        target.number,
                        target.image,
                        kind.name()
                    )));
                }
                recorded.clone()
            }
            None => {
                return Err(fail(format!(
                    "release {} was applied on another backend than {} — set WB_VMM_BACKEND to the one that ran it",
                    target.number,
                    kind.name()
                )));
            }
        };
        let mut d = self.d.clone();
        d.image = image.clone();
        let back = Local { d: &d, ..*self };
        let changed = match state::existing_salt(&spec.dir) {
            Some(salt) => {
                let now =
                    Intended::new(&d, self.deploy_env, None, &[], false).fingerprint(&d, &salt);
                releases::changed_env(&target, &now)
            }
            None => Vec::new(),
        };
        releases::warn_changed(self.report, &target, &changed);
        self.report.info(&format!(
            "rolling back to release {} ({}): {} by ID {image}",
            target.number, target.time, target.image
        ));
        let up = back.apply(true)?;
        releases::mark_rollback(&spec.dir, target.number, &target.image).map_err(fail)?;
        Ok(RolledBack {
            up,
            to: target.number,
            image,
            changed,
        })
    }
}
