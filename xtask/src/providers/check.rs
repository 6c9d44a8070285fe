//! `recipe check NAME` (SPEC §15, §18): proves a recipe against contract v2 without a
//! cloud account. Canary secrets fill the engine env; a recording wrapper stands in
//! front of every command on the recipe's PATH (each logs its argv, then execs the real
//! one); every action runs under a timeout. Returns findings, prints nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::header::Header;
use super::resolve::Recipes;
use super::sealed::{Action, RecipeRun, SealedEnv, sealed_env};
use super::spawn::PrivateTemp;
use super::state_line::{self, ProviderState};
use crate::core::contract::{Contract, PropType};
use crate::core::credentials::{BEARER, SIGNING_KEY};
use crate::core::deployment::Deployment;
use crate::core::plan::{Intended, env_digest, hex};
use crate::core::secret::{DeployEnv, Secret};
use crate::edge::{Edge, Vars};

/// The eight hooks every recipe defines.
pub const HOOKS: [&str; 8] = [
    "provider_ensure_app",
    "provider_set_secrets",
    "provider_attach_volume",
    "provider_deploy_image",
    "provider_public_url",
    "provider_down",
    "provider_status",
    "provider_logs",
];

/// One thing the recipe does against the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub id: &'static str,
    pub message: String,
}

/// What `recipe check` ran and found.
#[derive(Debug, Clone)]
pub struct Checked {
    pub recipe: PathBuf,
    pub findings: Vec<Finding>,
    /// Each action run, with its exit code (`None`: stopped at the timeout).
    pub ran: Vec<(String, Option<i32>)>,
    /// The header's warnings (an unknown `wb-*` directive…).
    pub warnings: Vec<String>,
}

/// What to check, and against what.
pub struct Check<'a> {
    pub edge: &'a Edge,
    pub name: &'a str,
    pub recipes: &'a Recipes,
    /// `--file F`: a deployment file for this provider (else one is synthesized).
    pub deployment: Option<Deployment>,
    /// `--doubles DIR`: put first on PATH; every `wb-cli` command must resolve there.
    pub doubles: Option<PathBuf>,
    /// `--live`: the CLIs on PATH, against a real (scratch) account.
    pub live: bool,
    pub timeout: Duration,
}

/// One action's run.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }

    fn state(&self) -> Result<Option<ProviderState>, String> {
        state_line::parse(&self.stdout)
    }
}

/// Everything one check run shares.
struct Bench<'a> {
    check: &'a Check<'a>,
    bootstrap: PathBuf,
    header: Header,
    d: Deployment,
    deploy_env: DeployEnv,
    temp: PrivateTemp,
    caller: Vars,
    log: PathBuf,
    outputs: Vec<String>,
    ran: Vec<(String, Option<i32>)>,
    findings: Vec<Finding>,
}

impl Check<'_> {
    pub fn run(&self) -> Result<Checked, String> {
        if !self.recipes.has(self.name) {
            return Err(self.recipes.unknown(self.name));
        }
        let header = self.recipes.header(self.name)?;
        self.recipes.materialize()?;
        let bootstrap = self.recipes.bootstrap(self.name)?;
        let text = std::fs::read_to_string(&bootstrap)
            .map_err(|e| format!("cannot read {}: {e}", bootstrap.display()))?;
        self.guard_clis(&header)?;
        let d = match &self.deployment {
            Some(d) => scratch_app(d),
            None => synthesize(self.edge, self.name, &header.contract)?,
        };
        let deploy_env = canaries(&d)?;
        let temp = PrivateTemp::new(&self.edge.temp)?;
        let log = temp.path().join("argv.log");
        let caller = self.caller(temp.path(), &log, &header.passthrough)?;
        let mut bench = Bench {
            check: self,
            bootstrap,
            header,
            d,
            deploy_env,
            temp,
            caller,
            log,
            outputs: Vec::new(),
            ran: Vec::new(),
            findings: hook_findings(&text),
        };
        bench.unknown_action()?;
        if bench.findings.is_empty() {
            bench.lifecycle()?;
        }
        bench.purge()?;
        bench.canaries_in_argv();
        bench.canaries_in_output();
        Ok(Checked {
            recipe: bench.bootstrap.clone(),
            findings: bench.findings,
            ran: bench.ran,
            warnings: bench.header.warnings.clone(),
        })
    }

    /// Without `--live`, every `wb-cli` command must resolve inside `--doubles DIR`: a
    /// check never touches a real account by accident.
    fn guard_clis(&self, header: &Header) -> Result<(), String> {
        if self.live || header.cli.is_empty() {
            return Ok(());
        }
        let Some(doubles) = &self.doubles else {
            let names: Vec<String> = header.cli.iter().map(|g| g.join("|")).collect();
            return Err(format!(
                "the {} recipe runs {} — pass `--doubles DIR` (test doubles of those CLIs) or `--live` (the real CLIs, against a scratch account)",
                self.name,
                names.join(", ")
            ));
        };
        for alt in header.cli.iter().flatten() {
            let inside = self.edge.cwd.join(doubles).join(alt).is_file();
            if !inside && self.edge.vars.which(alt).is_some() {
                return Err(format!(
                    "`{alt}` is not in {} but is on PATH — the recipe could reach a real account; add a double named `{alt}` there, or pass `--live`",
                    doubles.display()
                ));
            }
        }
        if !header.cli.iter().all(|alts| {
            alts.iter()
                .any(|a| self.edge.cwd.join(doubles).join(a).is_file())
        }) {
            return Err(format!(
                "{} holds no double for some of the recipe's `# wb-cli:` commands",
                doubles.display()
            ));
        }
        Ok(())
    }

    /// The caller env the recipe sees: PATH through the recording wrappers, a scratch
    /// HOME unless `--live`, and the recipe's passthroughs as the caller has them.
    fn caller(&self, temp: &Path, log: &Path, passthrough: &[String]) -> Result<Vars, String> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        if let Some(doubles) = &self.doubles {
            dirs.push(self.edge.cwd.join(doubles));
        }
        dirs.extend(self.edge.vars.path_dirs());
        let wrap = temp.join("wrap");
        write_wrappers(&wrap, log, &dirs)?;
        let mut path = wrap.into_os_string();
        for dir in &dirs {
            path.push(":");
            path.push(dir);
        }
        let home = if self.live {
            self.edge.vars.os("HOME").map(|h| h.to_owned())
        } else {
            let home = temp.join("home");
            crate::state::ensure_private_dir(&home)?;
            Some(home.into_os_string())
        };
        let mut vars = vec![("PATH".into(), path)];
        if let Some(home) = home {
            vars.push(("HOME".into(), home));
        }
        let names = super::sealed::GENERIC_PASSTHROUGH
            .iter()
            .copied()
            .chain(passthrough.iter().map(String::as_str));
        for name in names {
            if let Some(value) = self.edge.vars.os(name) {
                vars.push((name.into(), value.to_owned()));
            }
        }
        Ok(Vars::new(vars))
    }
}

impl Bench<'_> {
    fn env(&self, action: Action) -> Result<SealedEnv, String> {
        let intended = Intended::new(
            &self.d,
            &self.deploy_env,
            None,
            &self.header.artifacts,
            false,
        );
        let mut files = Vec::new();
        for (artifact, text) in &intended.artifacts {
            files.push((*artifact, self.temp.write(artifact.file_name(), text)?));
        }
        let digest = env_digest(&intended.env, b"recipe-check");
        let run = RecipeRun {
            action,
            providers_dir: &self.check.recipes.root,
            artifacts: &files,
            passthrough: &self.header.passthrough,
            purge: false,
            env_digest: &digest,
        };
        sealed_env(&self.d, &intended.env, &run, &self.caller)
    }

    /// Runs one action (its label in messages) with a timeout.
    fn run(&mut self, label: &str, env: SealedEnv) -> Result<Ran, String> {
        let ran = run_bash(&self.bootstrap, env, self.temp.path(), self.check.timeout)?;
        self.outputs.push(ran.stdout.clone());
        self.outputs.push(ran.stderr.clone());
        self.ran.push((label.to_string(), ran.code));
        if ran.code.is_none() {
            self.find(
                "timeout",
                format!(
                    "`{label}` did not finish within {}s — stopped it (does a command wait for input or follow logs?)",
                    self.check.timeout.as_secs()
                ),
            );
        }
        Ok(ran)
    }

    fn action(&mut self, label: &str, action: Action) -> Result<Ran, String> {
        let env = self.env(action)?;
        self.run(label, env)
    }

    /// Records a finding; one per id (the first occurrence says it).
    fn find(&mut self, id: &'static str, message: String) {
        if !self.findings.iter().any(|f| f.id == id) {
            self.findings.push(Finding { id, message });
        }
    }

    fn unknown_action(&mut self) -> Result<(), String> {
        let mut env = self.env(Action::Status)?;
        env.set("WB_RECIPE_ACTION", "wb-check-unknown".into());
        let ran = self.run("wb-check-unknown", env)?;
        if ran.code.is_some() && ran.code != Some(2) {
            self.find(
                "unknown-action-exit",
                format!(
                    "an unknown action (`wb-check-unknown`) exited {} — it must exit 2 (end the recipe with `wb_recipe_run`)",
                    ran.code.unwrap_or(-1)
                ),
            );
        }
        Ok(())
    }

    /// status (absent) → up → status → up → status → secrets, url, logs → down → status.
    fn lifecycle(&mut self) -> Result<(), String> {
        let absent = self.action("status (before up)", Action::Status)?;
        self.judge_absent(&absent);
        let up = self.action("up", Action::Up)?;
        if !up.ok() {
            self.find(
                "up-failed",
                format!(
                    "`up` failed (exit {}); the rest of the lifecycle was not checked. Its stderr ended: {}",
                    up.code.map_or("timeout".into(), |c| c.to_string()),
                    tail(&up.stderr)
                ),
            );
            return Ok(());
        }
        self.judge_url("up", &up);
        let first = self.action("status (after up)", Action::Status)?.state();
        let before = self.calls().len();
        let again = self.action("up (again)", Action::Up)?;
        self.judge_url("up (again)", &again);
        self.judge_creates(before);
        let second = self.action("status (after the second up)", Action::Status)?;
        self.judge_idempotent(first, second.state());
        for (label, action) in [
            ("secrets", Action::Secrets),
            ("url", Action::Url),
            ("logs", Action::Logs),
        ] {
            self.action(label, action)?;
        }
        let down = self.action("down", Action::Down)?;
        let after = self.action("status (after down)", Action::Status)?;
        if down.ok() {
            self.judge_down(&after);
        }
        Ok(())
    }

    /// Leaves nothing behind: `down` with `WB_PURGE=1` (not judged).
    fn purge(&mut self) -> Result<(), String> {
        let mut env = self.env(Action::Down)?;
        env.set("WB_PURGE", "1".into());
        self.run("down --purge (cleanup)", env)?;
        Ok(())
    }

    /// Every call the wrappers recorded so far.
    fn calls(&self) -> Vec<Vec<String>> {
        parse_log(&std::fs::read(&self.log).unwrap_or_default())
    }

    /// With `# wb-readonly:` lines, a second `up` must not run a `create` of the recipe's
    /// CLIs outside those read-only prefixes (the app, the volume… exist by then).
    fn judge_creates(&mut self, before: usize) {
        if self.header.readonly.is_empty() {
            return;
        }
        let clis: Vec<&String> = self.header.cli.iter().flatten().collect();
        let readonly = |argv: &[String]| {
            self.header
                .readonly
                .iter()
                .any(|p| argv.len() >= p.len() && argv[..p.len()] == p[..])
        };
        let creates: Vec<String> = self.calls()[before.min(self.calls().len())..]
            .iter()
            .filter(|argv| clis.contains(&&argv[0]) && !readonly(argv))
            .filter(|argv| argv.iter().skip(1).any(|a| a == "create"))
            .map(|argv| argv.iter().take(3).cloned().collect::<Vec<_>>().join(" "))
            .collect();
        if let Some(first) = creates.first() {
            self.find(
                "not-idempotent",
                format!(
                    "the second `up` ran `{first} …` — up twice must create nothing the second time (look before you create)"
                ),
            );
        }
    }

    fn judge_absent(&mut self, ran: &Ran) {
        if !ran.ok() {
            return;
        }
        let problem = match ran.state() {
            Ok(Some(state)) if !state.present => return,
            Ok(Some(_)) => "reports `\"present\": true`".to_string(),
            Ok(None) => "prints no `state:` line".to_string(),
            Err(why) => why,
        };
        self.find(
            "status-absent",
            format!(
                "`status` succeeds for an app that does not exist and {problem} — an absent app must print `state: {{\"present\": false, …}}` (or fail), or `apply` cannot tell it must converge"
            ),
        );
    }

    fn judge_url(&mut self, label: &str, ran: &Ran) {
        let n = ran.stdout.lines().filter(|l| l.starts_with("url:")).count();
        if n != 1 {
            self.find(
                "url-line",
                format!(
                    "`{label}` printed {n} `url:` lines on stdout — exactly one is the contract (hooks' own stdout goes to stderr during up)"
                ),
            );
        }
    }

    fn judge_idempotent(
        &mut self,
        first: Result<Option<ProviderState>, String>,
        second: Result<Option<ProviderState>, String>,
    ) {
        match (first, second) {
            (Ok(Some(a)), Ok(Some(b))) if a == b => {}
            (Ok(Some(a)), Ok(Some(b))) => self.find(
                "not-idempotent",
                format!(
                    "a second `up` changed what `status` reports: {a:?} became {b:?} — `up` twice must create nothing the second time"
                ),
            ),
            _ => self.find(
                "not-idempotent",
                "`status` printed no readable `state:` line after `up`, so a second `up` cannot be shown to change nothing".into(),
            ),
        }
    }

    fn judge_down(&mut self, after: &Ran) {
        if !after.ok() {
            return;
        }
        let problem = match after.state() {
            Ok(Some(state)) if !state.present || state.instances == 0 => return,
            Ok(Some(state)) => format!("still reports {} running instance(s)", state.instances),
            Ok(None) => "prints no `state:` line".into(),
            Err(why) => why,
        };
        self.find(
            "down-leaves-running",
            format!(
                "after `down`, `status` {problem} — down keeps data but stops every instance (`\"instances\": 0`, or `\"present\": false`)"
            ),
        );
    }

    fn canary_values(&self) -> Vec<String> {
        self.deploy_env
            .names()
            .filter_map(|(name, _)| self.deploy_env.get(name))
            .map(|s| s.expose().to_string())
            .collect()
    }

    fn canaries_in_argv(&mut self) {
        let log = std::fs::read(&self.log).unwrap_or_default();
        let canaries = self.canary_values();
        let mut seen = Vec::new();
        for argv in parse_log(&log) {
            if canaries.iter().any(|c| argv.iter().any(|a| a.contains(c)))
                && !seen.contains(&argv[0])
            {
                seen.push(argv[0].clone());
            }
        }
        if !seen.is_empty() {
            self.find(
                "secret-in-argv",
                format!(
                    "a canary secret reached the argv of `{}` — send values on stdin (wb_engine_dotenv, wb_engine_records), never as arguments",
                    seen.join("`, `")
                ),
            );
        }
    }

    fn canaries_in_output(&mut self) {
        let canaries = self.canary_values();
        if self
            .outputs
            .iter()
            .any(|o| canaries.iter().any(|c| o.contains(c)))
        {
            self.find(
                "secret-in-output",
                "a canary secret appeared in the recipe's stdout or stderr — never print values"
                    .into(),
            );
        }
    }
}

/// The last line or two of a stream, for messages.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(2)..].join(" / ")
}

/// `missing-hook`: a hook not defined, or still the `recipe new` stub.
pub fn hook_findings(text: &str) -> Vec<Finding> {
    let lines: Vec<&str> = text.lines().collect();
    let mut findings = Vec::new();
    for hook in HOOKS {
        let start = lines.iter().position(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("function ").unwrap_or(l).trim_start();
            l.strip_prefix(hook)
                .is_some_and(|rest| rest.trim_start().starts_with("()"))
        });
        let message = match start {
            None => format!("`{hook}` is not defined — every recipe defines the eight hooks"),
            Some(i) => {
                let end = (i..lines.len())
                    .find(|&j| {
                        lines[j].trim_end().ends_with('}') && (j == i || lines[j].starts_with('}'))
                    })
                    .unwrap_or(i);
                if !lines[i..=end].iter().any(|l| l.contains("not written yet")) {
                    continue;
                }
                format!("`{hook}` is not written yet (still the `recipe new` stub)")
            }
        };
        findings.push(Finding {
            id: "missing-hook",
            message,
        });
    }
    findings
}

/// The `--file` deployment with its own app: `<APP>-check`, so the check starts from an
/// absent app and never touches the deployment's real one.
fn scratch_app(d: &Deployment) -> Deployment {
    let mut d = d.clone();
    let app = d.app.as_deref().unwrap_or("wb");
    let keep = app.len().min(63 - "-check".len());
    d.app = Some(format!("{}-check", app[..keep].trim_end_matches('-')));
    d.id = format!("{}-check", d.id);
    d
}

/// A deployment satisfying the recipe's `wb-requires`, for a check without `--file`
/// (with a REGION whatever the recipe requires: an artifact may need one).
fn synthesize(edge: &Edge, name: &str, contract: &Contract) -> Result<Deployment, String> {
    let mut text = format!(
        "* recipe check :deployment:\n:PROPERTIES:\n:ID: recipe-check-{name}\n:ENGINE_PLACE: cloud\n:PROVIDER: {name}\n:APP: wb-check-{name}\n:REGION: iad\n"
    );
    for key in &contract.requires {
        let sample = match (key.as_str(), contract.property(key)) {
            ("APP", _) => continue,
            ("REGION", _) => continue,
            (_, Some(ty)) => sample(ty),
            (_, None) => continue,
        };
        text.push_str(&format!(":{key}: {sample}\n"));
    }
    text.push_str(":END:\n#+DEPLOY_SECRETS: WB_CHECK_SECRET\n");
    let read = crate::load::FileText {
        text: Some(text),
        diagnostics: Vec::new(),
    };
    let deploy_env = DeployEnv::default();
    let recipe_for = |p: &str| {
        if p == name {
            Ok(contract.clone())
        } else {
            Err(format!("no recipe `{p}`"))
        }
    };
    let inputs = crate::load::Inputs {
        shown: "(synthesized)",
        stem: "recipe-check",
        id: None,
        program: &edge.program,
        deploy_env: &deploy_env,
        recipe_for: &recipe_for,
        require_secrets: false,
    };
    let (_, checked) = crate::load::check_file(&read, &inputs);
    let errors: Vec<String> = checked.errors().map(|d| d.message.clone()).collect();
    checked.deployment.ok_or_else(|| {
        format!(
            "cannot synthesize a deployment for the recipe (pass `--file F`): {}",
            errors.join("; ")
        )
    })
}

fn sample(ty: PropType) -> &'static str {
    match ty {
        PropType::String | PropType::DnsLabel => "wb-check",
        PropType::Hostname => "check.example",
        PropType::SshTarget => "check@127.0.0.1",
        PropType::Port => "4000",
        PropType::HttpsUrl => "https://check.example",
        PropType::Path => "check",
    }
}

/// Canary values for the bearer, the signing key and every declared secret.
fn canaries(d: &Deployment) -> Result<DeployEnv, String> {
    let mut random = [0u8; 6];
    getrandom::fill(&mut random).map_err(|e| format!("no randomness for canaries: {e}"))?;
    let tag = hex(&random);
    let mut names = vec![BEARER.to_string(), SIGNING_KEY.to_string()];
    names.extend(d.secrets.iter().cloned());
    let store = names
        .into_iter()
        .enumerate()
        .map(|(i, n)| (n, Secret::new(format!("cnry{tag}x{i}"))));
    Ok(DeployEnv::new(Vec::new(), store))
}

/// One wrapper script, and a symlink to it for every command name on `dirs` (first
/// wins): it appends its argv (count, name, args; NUL-terminated) to `log`, then execs
/// the real command from `dirs`.
fn write_wrappers(wrap: &Path, log: &Path, dirs: &[PathBuf]) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
    let list: Vec<String> = dirs.iter().map(|d| quote(d)).collect();
    let script = format!(
        "#!/bin/bash\nname=${{0##*/}}\nprintf '%s\\0' \"$#\" \"$name\" \"$@\" >>{log}\nfor d in {dirs}; do\n  if [[ -f $d/$name && -x $d/$name ]]; then exec \"$d/$name\" \"$@\"; fi\ndone\nprintf '%s: command not found\\n' \"$name\" >&2\nexit 127\n",
        log = quote(log),
        dirs = list.join(" ")
    );
    crate::state::ensure_private_dir(wrap)?;
    let record = wrap.join(".wb-record");
    crate::state::atomic_write(&record, script.as_bytes(), 0o700)?;
    let mut seen = std::collections::BTreeSet::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let plain = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
            let executable = std::fs::metadata(entry.path())
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
            if plain && executable && !name.starts_with('.') && seen.insert(name.clone()) {
                std::os::unix::fs::symlink(".wb-record", wrap.join(&name))
                    .map_err(|e| format!("cannot make the wrapper for {name}: {e}"))?;
            }
        }
    }
    Ok(())
}

/// The wrappers' log → each call's argv (command name first).
fn parse_log(log: &[u8]) -> Vec<Vec<String>> {
    let mut fields = log
        .split(|b| *b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned());
    let mut calls = Vec::new();
    while let Some(count) = fields.next() {
        let Ok(n) = count.parse::<usize>() else {
            break;
        };
        let argv: Vec<String> = fields.by_ref().take(n + 1).collect();
        if argv.len() == n + 1 {
            calls.push(argv);
        }
    }
    calls
}

/// Runs `bash bootstrap` with `env` in its own process group; at `timeout` the group is
/// killed and the code is `None`.
fn run_bash(
    bootstrap: &Path,
    env: SealedEnv,
    temp: &Path,
    timeout: Duration,
) -> Result<Ran, String> {
    use std::os::unix::process::CommandExt;
    let out = temp.join("stdout");
    let err = temp.join("stderr");
    let file = |p: &Path| {
        std::fs::File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()))
    };
    let mut child = env
        .into_command("bash")
        .arg(bootstrap)
        .current_dir(temp)
        .stdin(std::process::Stdio::null())
        .stdout(file(&out)?)
        .stderr(file(&err)?)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run bash: {e}"))?;
    let deadline = Instant::now() + timeout;
    let code = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break Some(super::spawn::exit_code(&status)),
            None if Instant::now() >= deadline => {
                // SAFETY: kill(2) on the child's own process group.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    Ok(Ran {
        code,
        stdout: read(&out),
        stderr: read(&err),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stubs_and_missing_hooks_are_found() {
        let text = "provider_ensure_app() { wb_die \"provider_ensure_app: not written yet\"; }\nprovider_set_secrets() {\n  wb_die \"not written yet\"\n}\nprovider_attach_volume() {\n  :\n}\nfunction provider_deploy_image () { :; }\nprovider_public_url() { :; }\nprovider_down() { :; }\nprovider_status() { :; }\n";
        let ids: Vec<String> = hook_findings(text).into_iter().map(|f| f.message).collect();
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert!(ids[0].contains("provider_ensure_app"));
        assert!(ids[1].contains("provider_set_secrets"));
        assert!(ids[2].contains("provider_logs` is not defined"));
    }

    #[test]
    fn the_log_parses() {
        let log = b"2\0fly\0a\0b\x000\0ls\0";
        assert_eq!(parse_log(log), [vec!["fly", "a", "b"], vec!["ls"]]);
    }
}
