//! `rollback` in the cloud (SPEC §14, §18): release N's image — as the provider
//! reported it deployed, else as the file named it — and its recorded artifacts
//! (fly.toml, …), with today's secret values, through the recipe's ordinary `up`
//! (`WB_IMAGE` is the recorded image, `WB_FLY_TOML` the recorded file). Recorded as a
//! new release.

use super::cloud::Cloud;
use super::sealed::Action;
use crate::core::credentials::BEARER;
use crate::core::plan::Applied;
use crate::error::Error;
use crate::state::{self, releases, store};

/// What a rollback did.
#[derive(Debug, Clone)]
pub struct RolledBack {
    /// The release re-applied.
    pub to: u32,
    /// The release recorded for the rollback.
    pub number: u32,
    pub image: String,
    /// Engine variables whose value differs from release `to`'s (today's is used).
    pub changed: Vec<String>,
    pub url: String,
}

impl Cloud<'_> {
    pub fn rollback(&self, to: Option<u32>) -> Result<RolledBack, Error> {
        let dir = self.paths.ensure()?;
        let _lock = self.lock()?;
        state::sweep_temp_files(dir);
        let target = releases::pick(&releases::list(dir), to)?;
        let recipe = self.recipe()?;
        self.require_cli(&recipe, "roll back")?;
        let store = self.paths.store();
        let deploy_env = store::capture(&self.edge.vars, &store)?;
        if !deploy_env.has(BEARER) {
            return Err(format!(
                "{BEARER} is not in the store — a rollback re-applies with today's secrets; run `{} apply {}` first",
                self.edge.program, self.shown
            )
            .into());
        }
        let image = target.image_id.clone().unwrap_or(target.image.clone());
        let mut d = self.d.clone();
        d.image = image.clone();
        let back = Cloud { d: &d, ..*self };
        let mut intended = back.intended(&recipe, &deploy_env);
        for (artifact, text) in intended.artifacts.iter_mut() {
            if let Some(recorded) = target.artifacts.get(artifact.file_name()) {
                *text = recorded.clone();
            }
        }
        let salt = state::salt(dir)?;
        let fingerprint = intended.fingerprint(&d, &salt);
        let changed = releases::changed_env(&target, &fingerprint);
        releases::warn_changed(self.report, &target, &changed);
        self.report.info(&format!(
            "rolling back to release {} ({}): image {image}",
            target.number, target.time
        ));
        state::forget_applied(dir)?;
        let up = back.spawn(&recipe, &intended, Action::Up, self.stdout())?;
        if up.code != 0 {
            return Err(self.failed(
                Action::Up,
                up.code,
                " — the rollback did not complete; nothing was recorded as applied, so the next apply converges",
            ));
        }
        let url = up.url().map(str::to_string).unwrap_or_default();
        let live = back.deployed(&recipe, &intended);
        let mut release = releases::Release::now(
            self.edge,
            &d,
            Applied {
                intended: fingerprint,
                resolved: Default::default(),
            },
            live.as_ref().and_then(|l| l.image.clone()),
            target.artifacts.clone(),
        );
        release.instances = live.map(|l| l.instances);
        release.action = "rollback".into();
        release.rollback_to = Some(target.number);
        release.image = target.image.clone();
        let number = releases::append(dir, release)?;
        Ok(RolledBack {
            to: target.number,
            number,
            image,
            changed,
            url,
        })
    }
}
