//! Converging a cloud deployment through its provider recipe.
//!
//! `apply` executes the one [`Plan`]: an unchanged deployment makes no mutating provider
//! call — only a read-only `status` probe, and it converges when that probe fails; a
//! changed one runs `up`; `--force` always runs `up`. See docs/cloud.md.

use std::path::PathBuf;

use super::header::Header;
use super::resolve::Recipes;
use super::sealed::{Action, RecipeRun, sealed_env};
use super::spawn::{self, Finished, PrivateTemp, Stdout};
use crate::core::credentials::{BEARER, SIGNING_KEY};
use crate::core::deployment::Deployment;
use crate::core::plan::{self, Applied, Intended, Plan, hex};
use crate::core::secret::{DeployEnv, Secret};
use crate::edge::Edge;
use crate::error::Error;
use crate::report::Report;
use crate::state::{self, ApplyLock, Paths, store};

/// Everything a cloud verb works with, captured by the verb.
pub struct Cloud<'a> {
    pub d: &'a Deployment,
    pub deploy_env: &'a DeployEnv,
    pub paths: &'a Paths,
    pub recipes: &'a Recipes,
    pub edge: &'a Edge,
    pub report: &'a dyn Report,
    /// Recipe stdout goes to stderr (`--json`: stdout holds only the JSON object).
    pub json: bool,
    /// How messages name the file (`cargo xtask deploy … <file>`).
    pub shown: &'a str,
    /// `--lock-wait`: how long a mutating verb waits for another run's lock.
    pub lock_wait: std::time::Duration,
}

/// What `apply` did.
#[derive(Debug, Clone)]
pub struct Converged {
    pub changed: bool,
    pub changes: Vec<String>,
    pub forced: bool,
    pub url: String,
    /// `generated` on the apply that made the bearer, else `existing`.
    pub bearer: &'static str,
}

/// What `down` did: the recipe's own `kept:` / `destroyed:` lines.
#[derive(Debug, Clone)]
pub struct Down {
    pub kept: Vec<String>,
    pub destroyed: Vec<String>,
}

/// A recipe located and its header read: ready to spawn.
pub(super) struct Recipe {
    pub(super) bootstrap: PathBuf,
    pub(super) header: Header,
}

impl<'a> Cloud<'a> {
    pub(super) fn recipe(&self) -> Result<Recipe, Error> {
        spawn::sweep_stale_temp_dirs(&self.edge.temp);
        let provider = &self.d.provider;
        if !self.recipes.has(provider) {
            return Err(self.recipes.unknown(provider).into());
        }
        let header = self.recipes.header(provider)?;
        for warning in &header.warnings {
            self.report.warn(warning);
        }
        self.recipes.materialize()?;
        Ok(Recipe {
            bootstrap: self.recipes.bootstrap(provider)?,
            header,
        })
    }

    /// What apply would converge to, with this deploy env.
    pub(super) fn intended(&self, recipe: &Recipe, deploy_env: &DeployEnv) -> Intended {
        Intended::new(
            self.d,
            deploy_env,
            self.recipes.text(&self.d.provider),
            &recipe.header.artifacts,
            recipe.header.builds_from_source(&self.edge.vars).is_some(),
        )
    }

    /// Every CLI the recipe's `# wb-cli:` line names is on PATH, or an error saying
    /// which to install before running `verb` again.
    pub(super) fn require_cli(&self, recipe: &Recipe, verb: &str) -> Result<(), Error> {
        match missing_cli(self.edge, &recipe.header.cli) {
            None => Ok(()),
            Some(missing) => Err(format!(
                "the {} recipe needs `{}` on PATH — install it, then {verb} again (nothing was changed)",
                self.d.provider,
                missing.join("` or `")
            )
            .into()),
        }
    }

    /// Runs one action with the sealed env; the artifacts live in a private temp dir
    /// for exactly the length of the run.
    pub(super) fn spawn(
        &self,
        recipe: &Recipe,
        intended: &Intended,
        action: Action,
        out: Stdout,
    ) -> Result<Finished, Error> {
        self.spawn_with(recipe, intended, action, out, false)
    }

    /// [`Cloud::spawn`], with `WB_PURGE=1` for `down --purge --yes`.
    fn spawn_with(
        &self,
        recipe: &Recipe,
        intended: &Intended,
        action: Action,
        out: Stdout,
        purge: bool,
    ) -> Result<Finished, Error> {
        let temp = PrivateTemp::new(&self.edge.temp)?;
        let mut files = Vec::new();
        for (artifact, text) in &intended.artifacts {
            files.push((*artifact, temp.write(artifact.file_name(), text)?));
        }
        let salt = state::salt(self.paths.ensure()?)?;
        let digest = plan::env_digest(&intended.env, &salt);
        let run = RecipeRun {
            action,
            providers_dir: &self.recipes.root,
            artifacts: &files,
            passthrough: &recipe.header.passthrough,
            purge,
            env_digest: &digest,
        };
        let env = sealed_env(self.d, &intended.env, &run, &self.edge.vars)?;
        self.report.progress(&format!(
            "running the {} recipe: {} …",
            self.d.provider,
            action.as_str()
        ));
        let finished = spawn::run(&recipe.bootstrap, env, out)?;
        drop(temp);
        Ok(finished)
    }

    pub(super) fn stdout(&self) -> Stdout {
        if self.json {
            Stdout::ToStderr
        } else {
            Stdout::Forward
        }
    }

    /// A recipe that did not succeed: its code passes through, with one line saying what.
    pub(super) fn failed(&self, action: Action, code: i32, extra: &str) -> Error {
        let (what, code) = if spawn::interrupted() {
            ("interrupted — the", spawn::interrupted_code())
        } else {
            ("the", code)
        };
        let message = format!(
            "{what} {} recipe's `{}` {} (exit {code}){extra}",
            self.d.provider,
            action.as_str(),
            if spawn::interrupted() {
                "stopped"
            } else {
                "failed"
            },
        );
        if spawn::interrupted() {
            return Error::Interrupted { code, message };
        }
        Error::Recipe {
            action: action.as_str(),
            code,
            message,
        }
    }

    /// Makes the bearer when there is none (SPEC §8: shown once, on stderr).
    fn ensure_bearer(
        &self,
        store: &store::Store,
        deploy_env: DeployEnv,
    ) -> Result<(DeployEnv, &'static str), Error> {
        if deploy_env.has(BEARER) {
            return Ok((deploy_env, "existing"));
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
        let token = hex(&bytes);
        store.set(BEARER, Secret::new(token.clone()))?;
        // The one place the kit ever prints a secret (SPEC §8): stderr, human text, once.
        self.report.info(&format!(
            "control-plane locked — export WB_ENGINE_TOKEN={token}"
        ));
        self.report.info(&format!(
            "  (stored once in {}, never rotated; this is the only time it is shown)",
            store.path().display()
        ));
        Ok((store::capture(&self.edge.vars, store)?, "generated"))
    }

    /// The deployment's lock, for a mutating verb (SPEC §18: refuses or waits while
    /// another run — or the recipe of a killed one — is at work).
    pub(super) fn lock(&self) -> Result<ApplyLock, Error> {
        Ok(ApplyLock::acquire(
            &self.paths.lock(),
            self.lock_wait,
            &|w| self.report.warn(w),
        )?)
    }

    pub fn apply(&self, force: bool) -> Result<Converged, Error> {
        let dir = self.paths.ensure()?;
        let _lock = self.lock()?;
        state::sweep_temp_files(dir);
        let recipe = self.recipe()?;
        // The recipe's CLIs first (SPEC §13.3): no bearer is made, stored or shown for
        // an apply that cannot run.
        self.require_cli(&recipe, "apply")?;
        // Under the lock, read the deploy env again: another apply may have just made
        // the bearer. The plan is made before the bearer, so it says what `plan` said.
        let store = self.paths.store();
        let before_env = store::capture(&self.edge.vars, &store)?;
        let salt = state::salt(dir)?;
        let before = state::last_applied(dir);
        let plan = plan::plan(
            self.d,
            &self.intended(&recipe, &before_env),
            before.as_ref().map(|b| (b, salt.as_slice())),
        )
        .after_down(state::releases::is_stopped(dir));
        let (deploy_env, bearer) = self.ensure_bearer(&store, before_env)?;
        if !deploy_env.has(SIGNING_KEY) {
            self.report.warn(&format!(
                "{SIGNING_KEY} is unset — the engine identity will change on every deploy; make one with `{} secrets generate {SIGNING_KEY} {}`",
                self.edge.program, self.shown
            ));
        }
        let intended = self.intended(&recipe, &deploy_env);
        let fingerprint = intended.fingerprint(self.d, &salt);
        let from_source = recipe
            .header
            .builds_from_source(&self.edge.vars)
            .map(str::to_string);
        let mut changes = plan.lines();
        if !force && plan.unchanged() && from_source.is_none() {
            match self.unchanged(&recipe, &intended)? {
                Ok(url) => {
                    return Ok(Converged {
                        changed: false,
                        changes: Vec::new(),
                        forced: false,
                        url,
                        bearer,
                    });
                }
                Err(drift) => changes.extend(drift),
            }
        } else {
            self.announce(force, from_source.as_deref(), &plan);
        }
        // From here on the provider's state is in flux: no record until `up` succeeds.
        state::forget_applied(dir)?;
        let up = self.spawn(&recipe, &intended, Action::Up, self.stdout())?;
        // Interrupted: never "ok", whatever the recipe's code (it may trap the signal
        // and exit 0).
        if up.code != 0 || spawn::interrupted() {
            return Err(self.failed(
                Action::Up,
                up.code,
                " — nothing was recorded as applied, so the next apply converges",
            ));
        }
        let url = up.url().map(str::to_string).ok_or_else(|| {
            self.failed(Action::Up, 1, " — it printed no `url: …` line on stdout")
        })?;
        let applied = Applied {
            intended: fingerprint,
            resolved: Default::default(),
        };
        let live = self.deployed(&recipe, &intended);
        let artifacts = intended
            .artifacts
            .iter()
            .map(|(a, text)| (a.file_name().to_string(), text.clone()))
            .collect();
        let mut release = state::releases::Release::now(
            self.edge,
            self.d,
            applied,
            live.as_ref().and_then(|l| l.image.clone()),
            artifacts,
        );
        release.instances = live.map(|l| l.instances);
        state::releases::append(dir, release)?;
        Ok(Converged {
            changed: true,
            changes,
            forced: force,
            url,
            bearer,
        })
    }

    /// The image the provider reports as deployed: the `state:` line of the recipe's
    /// read-only `status` (SPEC §13.1), when it prints one.
    pub(super) fn deployed(
        &self,
        recipe: &Recipe,
        intended: &Intended,
    ) -> Option<super::live::Live> {
        let probe = self
            .spawn(recipe, intended, Action::Status, Stdout::Quiet)
            .ok()?;
        if probe.code != 0 {
            return None;
        }
        super::live::parse(&probe.stdout)
    }

    /// `plan --live`: how what the provider runs differs from the newest release (the
    /// recipe's read-only `status` and its `state:` line).
    pub fn drift(&self) -> Result<Vec<String>, Error> {
        let Some(release) = state::releases::current(&self.paths.dir) else {
            return Ok(Vec::new());
        };
        let (recipe, intended) = self.current()?;
        let probe = self.spawn(&recipe, &intended, Action::Status, Stdout::Quiet)?;
        match super::live::parse(&probe.stdout) {
            Some(live) if probe.code == 0 || !live.present => {
                Ok(super::live::drift(&release, &live))
            }
            _ if probe.code != 0 => {
                self.report.info(probe.stderr.trim_end());
                Err(self.failed(Action::Status, probe.code, ""))
            }
            _ => {
                self.report.info(&format!(
                    "the {} recipe's `status` prints no `state:` line — drift cannot be checked",
                    self.d.provider
                ));
                Ok(Vec::new())
            }
        }
    }

    fn announce(&self, force: bool, from_source: Option<&str>, plan: &Plan) {
        if force {
            self.report
                .info("--force: running `up` whatever the last-applied record says");
        } else if let Some(name) = from_source {
            self.report.info(&format!(
                "{name} is set: the build context cannot be fingerprinted, so `up` runs every time"
            ));
        } else {
            self.report.info("apply will:");
            for change in plan.lines() {
                self.report.info(&format!("  - {change}"));
            }
        }
    }

    /// An unchanged deployment: confirm the app still exists, as last released, with a
    /// read-only probe. `Ok(url)` when it does; `Err(why)` when `status` reports it
    /// absent or shows drift (converge); a failing `status` is an error (contract v2).
    fn unchanged(
        &self,
        recipe: &Recipe,
        intended: &Intended,
    ) -> Result<Result<String, Vec<String>>, Error> {
        let probe = self.spawn(recipe, intended, Action::Status, Stdout::Quiet)?;
        if spawn::interrupted() {
            return Err(self.failed(Action::Status, spawn::interrupted_code(), ""));
        }
        if probe.code != 0 {
            // Contract v2 (SPEC §18): an absent app is `"present": false` with exit 0;
            // a failing status could not tell (not logged in, network…), never "absent".
            return Err(self.failed(
                Action::Status,
                probe.code,
                &format!(
                    " — it could not tell whether the app exists (not logged in? network?), so apply changed nothing; its stderr: {}",
                    probe.stderr.trim_end()
                ),
            ));
        }
        match super::state_line::parse(&probe.stdout) {
            Ok(Some(state)) if !state.present => {
                self.report
                    .info("the provider's `status` reports the app absent; converging");
                return Ok(Err(vec![
                    "re-create: the provider's status reports the app absent".into(),
                ]));
            }
            Ok(_) => {}
            Err(why) => self.report.warn(&why),
        }
        if let (Some(live), Some(release)) = (
            super::live::parse(&probe.stdout),
            state::releases::current(&self.paths.dir),
        ) {
            let drift = super::live::drift(&release, &live);
            if !drift.is_empty() {
                self.report
                    .info("drift — the provider runs something else than the last release:");
                for line in &drift {
                    self.report.info(&format!("  - {line}"));
                }
                return Ok(Err(drift));
            }
        }
        let url = self.url_of(recipe, intended)?;
        self.report.good(&format!(
            "unchanged — {} is as last applied; nothing to do",
            self.d.id
        ));
        Ok(Ok(url))
    }

    fn current(&self) -> Result<(Recipe, Intended), Error> {
        let recipe = self.recipe()?;
        let intended = self.intended(&recipe, self.deploy_env);
        Ok((recipe, intended))
    }

    /// `down`: the recipe's stdout is progress (on stderr, live) but for its `kept:` /
    /// `destroyed:` lines, which the verb repeats — the kit never says on its own what
    /// survived.
    pub fn down(&self, purge: bool) -> Result<Down, Error> {
        let dir = self.paths.ensure()?;
        let _lock = self.lock()?;
        state::sweep_temp_files(dir);
        let (recipe, intended) = self.current()?;
        let finished =
            self.spawn_with(&recipe, &intended, Action::Down, Stdout::Progress, purge)?;
        if finished.code != 0 || spawn::interrupted() {
            return Err(self.failed(Action::Down, finished.code, ""));
        }
        state::releases::stop(dir)?;
        let lines = |prefix: &str| -> Vec<String> {
            finished
                .stdout
                .lines()
                .filter_map(|l| l.strip_prefix(prefix))
                .map(|l| l.trim().to_string())
                .collect()
        };
        Ok(Down {
            kept: lines("kept:"),
            destroyed: lines("destroyed:"),
        })
    }

    /// `secrets stage`: the recipe's `secrets` action, under the lock.
    pub fn stage(&self) -> Result<(), Error> {
        let dir = self.paths.ensure()?;
        let _lock = self.lock()?;
        state::sweep_temp_files(dir);
        let (recipe, intended) = self.current()?;
        let finished = self.spawn(&recipe, &intended, Action::Secrets, Stdout::Progress)?;
        if finished.code != 0 {
            return Err(self.failed(Action::Secrets, finished.code, ""));
        }
        Ok(())
    }

    /// `status` and `logs`: the provider's own words, live; returned for `--json`.
    pub fn show(&self, action: Action) -> Result<String, Error> {
        let (recipe, intended) = self.current()?;
        let finished = self.spawn(&recipe, &intended, action, self.stdout())?;
        if finished.code != 0 {
            return Err(self.failed(action, finished.code, ""));
        }
        Ok(finished.stdout)
    }

    /// Whether a successful apply is on record.
    pub fn applied(&self) -> bool {
        state::last_applied(&self.paths.dir).is_some()
    }

    fn url_of(&self, recipe: &Recipe, intended: &Intended) -> Result<String, Error> {
        let finished = self.spawn(recipe, intended, Action::Url, Stdout::Quiet)?;
        if finished.code != 0 {
            self.report.info(finished.stderr.trim_end());
            return Err(self.failed(Action::Url, finished.code, ""));
        }
        finished
            .url()
            .map(str::to_string)
            .ok_or_else(|| self.failed(Action::Url, 1, " — it printed no `url: …` line"))
    }

    pub fn url(&self) -> Result<String, Error> {
        let (recipe, intended) = self.current()?;
        self.url_of(&recipe, &intended)
    }

    /// `verify`: GET `<url>/health` with the bearer, through `curl` — the header goes in
    /// on stdin as curl config (`--config -`), never in argv. `WB_VERIFY_URL` replaces
    /// the recipe's URL (a local server in tests, a tunnel). Returns the base URL, the
    /// health URL and the status (0 when nothing answered).
    pub fn verify(&self) -> Result<(String, String, u16), Error> {
        let Some(bearer) = self.deploy_env.get(BEARER) else {
            return Err(format!(
                "{BEARER} is not set — run `{} apply {}` first (it makes the bearer)",
                self.edge.program, self.shown
            )
            .into());
        };
        let base = match self.edge.vars.get("WB_VERIFY_URL") {
            Some(url) => url.to_string(),
            None => self.url()?,
        };
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(format!(
                "the URL to verify is not an http(s) URL: `{base}` — refusing to send the bearer there"
            )
            .into());
        }
        if let Some(message) = in_cluster_only(&base, &self.edge.program, self.shown) {
            return Err(message.into());
        }
        let health = format!("{}/health", base.trim_end_matches('/'));
        let code = curl_status(self.edge, &health, bearer)?;
        Ok((base, health, code))
    }
}

/// A Kubernetes Service URL (`http://<svc>.<ns>.svc.cluster.local`) resolves only inside
/// the cluster: `verify` says so and how to reach it (SPEC §18 "Kubernetes"), instead of
/// sending the bearer towards a name this machine cannot resolve.
fn in_cluster_only(base: &str, program: &str, shown: &str) -> Option<String> {
    let host = base.split("://").nth(1)?.split(['/', ':']).next()?;
    let (service, namespace) = host.strip_suffix(".svc.cluster.local")?.split_once('.')?;
    Some(format!(
        "`{base}` is reachable only inside the cluster — set DOMAIN (served by the Ingress), or forward a port: `kubectl --namespace {namespace} port-forward service/{service} 8080:80`, then `WB_VERIFY_URL=http://127.0.0.1:8080 {program} verify {shown}`"
    ))
}

/// The first CLI group none of whose alternatives is on PATH.
pub fn missing_cli<'h>(edge: &Edge, cli: &'h [Vec<String>]) -> Option<&'h [String]> {
    cli.iter()
        .find(|alts| alts.iter().all(|a| edge.vars.which(a).is_none()))
        .map(Vec::as_slice)
}

/// The HTTP status of a GET with the bearer (0 when nothing answered). Proxy variables
/// are cleared: the bearer goes to the URL's host and nowhere else.
fn curl_status(edge: &Edge, url: &str, bearer: &Secret) -> Result<u16, String> {
    let Some(curl) = edge.vars.which("curl") else {
        return Err("`verify` needs curl on PATH (https://curl.se/download.html)".into());
    };
    let quoted = bearer.expose().replace('\\', "\\\\").replace('"', "\\\"");
    let config = format!("header = \"Authorization: Bearer {quoted}\"\n");
    let mut env: Vec<(String, String)> = Vec::new();
    if let Some(path) = edge.vars.get("PATH") {
        env.push(("PATH".into(), path.into()));
    }
    let out = duct::cmd(
        curl,
        [
            "-q",
            "--silent",
            "--show-error",
            "--output",
            "/dev/null",
            "--write-out",
            "%{http_code}",
            "--max-time",
            "30",
            "--retry",
            "2",
            "--retry-connrefused",
            "--config",
            "-",
            "--url",
            url,
        ],
    )
    .full_env(env)
    .stdin_bytes(config)
    .stdout_capture()
    .unchecked()
    .run()
    .map_err(|e| format!("cannot run curl: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0))
}
