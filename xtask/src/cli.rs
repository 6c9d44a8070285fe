//! The command line, typed: `cargo xtask deploy <verb> [FILE] [--json]` (or the
//! standalone `wb-deploy <verb> …`), `cargo xtask engine image`, `cargo xtask ci`.
//! One [`Cmd`] per invocation, one args struct per verb, per-verb help, did-you-mean for
//! verbs and flags. Parsing only; every verb lives in `verbs/`.

use std::ffi::OsString;
use std::path::Path;

use lexopt::{Arg, Parser, ValueExt};

use crate::core::deployment::{Axis, Place};
use crate::error::Error;

/// What one invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    /// Help text for stdout (`--help`, `help VERB`); `verb` names it in `--json`.
    Help {
        text: String,
        json: bool,
    },
    Version {
        json: bool,
    },
    Completions {
        shell: Shell,
    },
    Deploy(Deploy),
    EngineImage {
        tag: Option<String>,
    },
    Ci,
}

/// A deploy verb with what every verb shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deploy {
    pub verb: Verb,
    /// FILE as given: any bytes (a file name need not be UTF-8).
    pub file: Option<std::path::PathBuf>,
    pub json: bool,
    /// `--id ID`: one deployment among several drawers.
    pub id: Option<String>,
    /// `--lock-wait SECONDS` (mutating verbs; 0 refuses at once).
    pub lock_wait: u64,
    /// `--preview NAME`: the preview deployment `<id>-<name>` (SPEC §14).
    pub preview: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// One args struct per verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    Init(InitArgs),
    Validate,
    /// `plan`; `live` also asks the place what is running (drift).
    Plan {
        live: bool,
    },
    Apply {
        force: bool,
    },
    /// `releases`: the deployment's recorded releases.
    Releases,
    /// `rollback [--to N]`: re-apply release N (default: the previous one).
    Rollback {
        to: Option<u32>,
    },
    /// `previews`: the preview deployments of a file.
    Previews,
    Verify,
    Status,
    Logs,
    Url,
    /// `down`; `purge` (only with `--yes`) destroys the data too.
    Down {
        purge: bool,
    },
    Doctor,
    /// `up-local` (alias `local`): the zero-config local engine.
    Local,
    /// `connect`: what a client needs — the URL and where the token is.
    Connect,
    Secrets(SecretsAction),
    Fmt,
    Recipe(RecipeAction),
}

/// `recipe new NAME` / `recipe check NAME` (SPEC §15, §18).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipeAction {
    New {
        name: String,
        dir: Option<String>,
        force: bool,
    },
    Check {
        name: String,
        file: Option<String>,
        doubles: Option<String>,
        live: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitArgs {
    pub place: Option<Place>,
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsAction {
    /// `set NAME=VALUE` (value inline) or `set NAME` (value on stdin).
    Set {
        name: String,
        inline: Option<String>,
    },
    List,
    Unset {
        name: String,
    },
    /// `generate NAME`: 32 random bytes, hex, stored (for WB_SIGNING_KEY and friends).
    Generate {
        name: String,
    },
    /// `stage`: the recipe's `secrets` action — the whole engine env stored with the
    /// provider, no restart (cloud).
    Stage,
}

impl Verb {
    pub fn name(&self) -> &'static str {
        VerbInfo::of(self).name
    }

    /// Whether this verb needs the deploy env's values (credentials, declared secrets):
    /// `validate`, `plan`, `apply` and `fmt` do; a teardown or a status never does.
    pub fn requires_secrets(&self) -> bool {
        matches!(
            self,
            Verb::Validate
                | Verb::Plan { .. }
                | Verb::Apply { .. }
                | Verb::Rollback { .. }
                | Verb::Fmt
        )
    }
}

/// A verb's name, flags, the file it takes, and its help.
pub struct VerbInfo {
    pub name: &'static str,
    pub summary: &'static str,
    pub usage: &'static str,
    pub flags: &'static [&'static str],
    pub example: &'static str,
    pub takes_file: bool,
}

const COMMON: &[&str] = &["--json", "--id", "--help"];

/// Older names that still work: `local` reads like a file name, so the verb is
/// `up-local`; `local` stays an alias (its help says so).
pub const ALIASES: &[(&str, &str)] = &[("local", "up-local")];

pub const VERBS: &[VerbInfo] = &[
    VerbInfo {
        name: "init",
        summary: "write a starter file (never clobbers without --force)",
        usage: "init [local|cloud] [FILE] [--force]",
        flags: &["--force"],
        example: "init cloud deployments/staging.org",
        takes_file: true,
    },
    VerbInfo {
        name: "validate",
        summary: "check the file; deploys nothing, touches nothing",
        usage: "validate [FILE]",
        flags: &[],
        example: "validate deployments/local.org",
        takes_file: true,
    },
    VerbInfo {
        name: "plan",
        summary: "validate + the engine env (secrets redacted) + artifacts + what apply would change",
        usage: "plan [FILE] [--live] [--preview NAME]",
        flags: &["--live", "--preview"],
        example: "plan deployments/cloud-saas.org --json",
        takes_file: true,
    },
    VerbInfo {
        name: "apply",
        summary: "converge; an unchanged deployment changes nothing",
        usage: "apply [FILE] [--force] [--lock-wait SECONDS] [--preview NAME]",
        flags: &["--force", "--lock-wait", "--preview"],
        example: "apply deployments/local.org",
        takes_file: true,
    },
    VerbInfo {
        name: "releases",
        summary: "what each apply that changed something deployed, newest last (last 20)",
        usage: "releases [FILE]",
        flags: &[],
        example: "releases deployments/cloud-saas.org --json",
        takes_file: true,
    },
    VerbInfo {
        name: "rollback",
        summary: "re-apply an earlier release's image and artifacts with today's secrets",
        usage: "rollback [FILE] [--to N] [--lock-wait SECONDS]",
        flags: &["--to", "--lock-wait"],
        example: "rollback deployments/cloud-saas.org --to 3",
        takes_file: true,
    },
    VerbInfo {
        name: "previews",
        summary: "the preview deployments of a file, with their last apply time",
        usage: "previews [FILE]",
        flags: &[],
        example: "previews deployments/cloud-saas.org",
        takes_file: true,
    },
    VerbInfo {
        name: "verify",
        summary: "prove the live engine answers GET /health with 200",
        usage: "verify [FILE] [--preview NAME]",
        flags: &["--preview"],
        example: "verify deployments/local.org",
        takes_file: true,
    },
    VerbInfo {
        name: "status",
        summary: "presence and endpoint",
        usage: "status [FILE] [--preview NAME]",
        flags: &["--preview"],
        example: "status deployments/local.org --json",
        takes_file: true,
    },
    VerbInfo {
        name: "logs",
        summary: "the engine's recent logs",
        usage: "logs [FILE] [--preview NAME]",
        flags: &["--preview"],
        example: "logs deployments/local.org",
        takes_file: true,
    },
    VerbInfo {
        name: "url",
        summary: "the engine's URL, bare, on stdout (for $(…))",
        usage: "url [FILE] [--preview NAME]",
        flags: &["--preview"],
        example: "curl \"$(cargo xtask deploy url deployments/local.org)/health\"",
        takes_file: true,
    },
    VerbInfo {
        name: "down",
        summary: "stop the engine, keep the data (--purge --yes: destroy it too, cloud)",
        usage: "down [FILE] [--purge --yes] [--lock-wait SECONDS] [--preview NAME]",
        flags: &["--purge", "--yes", "--lock-wait", "--preview"],
        example: "down deployments/local.org",
        takes_file: true,
    },
    VerbInfo {
        name: "doctor",
        summary: "probe backends for real, say which one apply picks; engine image, CLIs",
        usage: "doctor [FILE]",
        flags: &[],
        example: "doctor --json",
        takes_file: true,
    },
    VerbInfo {
        name: "up-local",
        summary: "zero-config local engine, no file needed (id `local`; alias: `local`)",
        usage: "up-local",
        flags: &[],
        example: "up-local",
        takes_file: false,
    },
    VerbInfo {
        name: "connect",
        summary: "what a client needs: the URL and the file holding the token (never the token)",
        usage: "connect [FILE]",
        flags: &[],
        example: "connect deployments/local.org --json",
        takes_file: true,
    },
    VerbInfo {
        name: "secrets",
        summary: "the deployment's secret store: set | generate | list | unset | stage",
        usage: "secrets set NAME [FILE]          value on stdin (keeps it out of shell history and ps)\n  secrets set NAME=VALUE [FILE]    value inline (visible in ps: prefer stdin)\n  secrets generate NAME [FILE]     32 random bytes, hex (e.g. WB_SIGNING_KEY)\n  secrets list [FILE]              names and where each comes from (store · env · unset)\n  secrets unset NAME [FILE]\n  secrets stage [FILE]             store the whole engine env with the provider (cloud; no restart)",
        flags: &[],
        example: "secrets set STRIPE_API_KEY deployments/cloud-saas.org < key.txt",
        takes_file: true,
    },
    VerbInfo {
        name: "recipe",
        summary: "write a provider recipe (new) or prove one against the contract (check)",
        usage: "recipe new NAME [--dir DIR] [--force]\n  recipe check NAME [--file F] [--doubles DIR | --live]",
        flags: &["--dir", "--force", "--file", "--doubles", "--live"],
        example: "recipe check fly --doubles tests/doubles/bin",
        takes_file: false,
    },
    VerbInfo {
        name: "fmt",
        summary: "move `#+DEPLOY_*` keyword lines into the drawer (--migrate)",
        usage: "fmt --migrate [FILE]",
        flags: &["--migrate"],
        example: "fmt --migrate deployments/old.org",
        takes_file: true,
    },
];

impl VerbInfo {
    pub fn find(name: &str) -> Option<&'static VerbInfo> {
        let name = ALIASES
            .iter()
            .find(|(alias, _)| *alias == name)
            .map_or(name, |(_, verb)| verb);
        VERBS.iter().find(|v| v.name == name)
    }

    fn of(verb: &Verb) -> &'static VerbInfo {
        let name = match verb {
            Verb::Init(_) => "init",
            Verb::Validate => "validate",
            Verb::Plan { .. } => "plan",
            Verb::Apply { .. } => "apply",
            Verb::Releases => "releases",
            Verb::Rollback { .. } => "rollback",
            Verb::Previews => "previews",
            Verb::Verify => "verify",
            Verb::Status => "status",
            Verb::Logs => "logs",
            Verb::Url => "url",
            Verb::Down { .. } => "down",
            Verb::Doctor => "doctor",
            Verb::Local => "up-local",
            Verb::Connect => "connect",
            Verb::Secrets(_) => "secrets",
            Verb::Fmt => "fmt",
            Verb::Recipe(_) => "recipe",
        };
        VerbInfo::find(name).expect("every verb has an entry")
    }

    /// The verb's own help: usage, flags, one example.
    pub fn help(&self, program: &str) -> String {
        let mut flags: Vec<String> = self
            .flags
            .iter()
            .map(|f| format!("  {f:<10} {}", flag_help(f)))
            .collect();
        flags.extend(COMMON.iter().map(|f| format!("  {f:<10} {}", flag_help(f))));
        let file = match self.name {
            "status" | "down" | "logs" | "url" | "verify" | "connect" => {
                "\nFILE defaults to ./deployment.org, else (when it has run) the zero-config\ndeployment of `up-local`; a bare name such as `local` also finds deployments/local.org.\n"
            }
            _ if self.takes_file => {
                "\nFILE defaults to ./deployment.org; a bare name such as `local` also finds\ndeployments/local.org.\n"
            }
            _ => "",
        };
        format!(
            "{program} {}: {}\n\nUsage:\n  {program} {}\n{file}\nOptions:\n{}\n\nExample:\n  {}\n",
            self.name,
            self.summary,
            self.usage
                .replace("\n  secrets", &format!("\n  {program} secrets"))
                .replace("\n  recipe", &format!("\n  {program} recipe")),
            flags.join("\n"),
            if self.example.starts_with("curl") {
                self.example.replace("cargo xtask deploy", program)
            } else {
                format!("{program} {}", self.example)
            }
        )
    }
}

fn flag_help(flag: &str) -> &'static str {
    match flag {
        "--force" => "init: overwrite; apply: re-run even if nothing changed",
        "--migrate" => "rewrite the keyword form (required)",
        "--purge" => "destroy the data too: the app, its volume and secrets (needs --yes)",
        "--yes" => "confirm --purge (it cannot be undone)",
        "--json" => "one JSON object on stdout; human text stays on stderr",
        "--id" => "ID: pick one deployment among several drawers",
        "--live" => {
            "plan: also ask the provider (or backend) what runs, and show drift; recipe check: run the real CLIs on PATH (a scratch account!), not doubles"
        }
        "--lock-wait" => "SECONDS: wait this long for another run's lock (default 0: refuse)",
        "--preview" => "NAME: the preview deployment <id>-NAME with APP <app>-NAME",
        "--to" => "N: the release to roll back to (default: the previous one)",
        "--dir" => "DIR: where `recipe new` writes NAME/bootstrap.sh (default ./recipes)",
        "--file" => "F: the deployment `recipe check` uses (default: one it synthesizes)",
        "--doubles" => "DIR: test doubles of the recipe's CLIs, first on PATH",
        _ => "this help",
    }
}

/// The global help: every verb in one line.
pub fn main_help(program: &str) -> String {
    let verbs: String = VERBS
        .iter()
        .map(|v| format!("  {:<9} {}\n", v.name, v.summary))
        .collect();
    format!(
        "The deploy kit: describe where the engine runs in a small org file, validate it, and converge.

Usage:
  {program} <verb> [FILE] [--json]
  {program} FILE                    (same as `plan FILE`)
  {program} help <verb>             that verb's usage, flags and an example

Verbs:
{verbs}
Also: --version, completions bash|zsh|fish; in the repository, `cargo xtask engine image
[--tag TAG]` builds the engine's OCI image and `cargo xtask ci` runs every check.

Exit codes: 0 success · 1 failure · 2 usage · 130/143 interrupted · a recipe's own code.
Environment: WB_HOME (state dir), WB_PROVIDERS_DIR (recipes), WB_VMM_BACKEND (local
backend), WB_ENGINE_BIN (process backend's engine), WB_VERIFY_URL (cloud verify target),
WB_PROGRESS (1: progress lines even when piped or --json; 0: never), NO_COLOR (plain output).

Example:
  {program} validate deployments/local.org
  {program} plan deployments/cloud-saas.org --json
"
    )
}

/// The closest of `names` to `word`, when close enough to suggest.
pub fn did_you_mean<'a>(word: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    names
        .into_iter()
        .map(|n| (strsim::damerau_levenshtein(word, n), n))
        .filter(|(d, n)| *d <= 2.max(n.len() / 3) && *d < n.len())
        .min()
        .map(|(_, n)| n)
}

/// Whether the arguments ask for JSON (so even a usage error answers in JSON).
pub fn wants_json(args: &[OsString]) -> bool {
    args.iter().any(|a| {
        a.to_str()
            .is_some_and(|a| a == "--json" || a.starts_with("--json="))
    })
}

/// Parses the whole command line. `deploy_prefix`: the standalone binary has its verbs
/// at the top level (`wb-deploy apply`); the xtask binary nests them (`xtask deploy
/// apply`).
pub fn parse(
    args: Vec<OsString>,
    standalone: bool,
    program: &str,
    cwd: &Path,
) -> Result<Cmd, Error> {
    if standalone {
        return parse_deploy(args, program, cwd);
    }
    let mut rest = args.into_iter();
    let Some(first) = rest.next() else {
        return Ok(Cmd::Help {
            text: xtask_help(),
            json: false,
        });
    };
    match first.to_str() {
        Some("deploy") => parse_deploy(rest.collect(), program, cwd),
        Some("engine") => parse_engine(rest.collect()),
        Some("ci") if rest.len() == 0 => Ok(Cmd::Ci),
        Some("-h" | "--help" | "help") => Ok(Cmd::Help {
            text: xtask_help(),
            json: false,
        }),
        Some(other) => Err(Error::Usage(format!(
            "unknown command `{other}` — expected `deploy`, `engine` or `ci`"
        ))),
        None => Err(Error::Usage("arguments must be UTF-8".into())),
    }
}

fn xtask_help() -> String {
    "The deploy kit's repository tasks.

Usage:
  cargo xtask deploy <verb> [FILE] [--json]   the kit (run `cargo xtask deploy --help`)
  cargo xtask engine image [--tag TAG]        build the reference engine's OCI image
  cargo xtask ci                              everything CI checks, locally
"
    .into()
}

fn parse_engine(args: Vec<OsString>) -> Result<Cmd, Error> {
    let help = "Usage: cargo xtask engine image [--tag TAG]\n\nBuilds the reference engine as a static binary and an OCI image FROM scratch\nwith podman or docker (default tag localhost/wb-engine:dev).\n";
    let mut parser = Parser::from_args(args);
    let mut saw_image = false;
    let mut tag = None;
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => {
                return Ok(Cmd::Help {
                    text: help.into(),
                    json: false,
                });
            }
            Arg::Long("tag") => tag = Some(parser.value().map_err(usage)?.string().map_err(usage)?),
            Arg::Value(v) if !saw_image && v == "image" => saw_image = true,
            other => return Err(usage(other.unexpected())),
        }
    }
    if !saw_image {
        return Err(Error::Usage(format!("expected `engine image`\n\n{help}")));
    }
    Ok(Cmd::EngineImage { tag })
}

fn usage(e: lexopt::Error) -> Error {
    Error::Usage(e.to_string())
}

/// What the flags of one deploy invocation said, before the verb is known.
#[derive(Default)]
struct Flags {
    json: bool,
    help: bool,
    version: bool,
    force: bool,
    migrate: bool,
    purge: bool,
    yes: bool,
    live: bool,
    id: Option<String>,
    lock_wait: u64,
    preview: Option<String>,
    to: Option<u32>,
    /// `recipe`'s flags.
    dir: Option<String>,
    file: Option<String>,
    doubles: Option<String>,
    /// Flags given, for checking them against the verb.
    given: Vec<&'static str>,
}

/// The switches: `--force`, `--migrate`, `--purge`, `--yes`.
fn switch_flag(flags: &mut Flags, flag: &str) {
    let (slot, name) = match flag {
        "force" => (&mut flags.force, "--force"),
        "migrate" => (&mut flags.migrate, "--migrate"),
        "purge" => (&mut flags.purge, "--purge"),
        _ => (&mut flags.yes, "--yes"),
    };
    *slot = true;
    flags.given.push(name);
}

/// `recipe`'s flags: `--dir DIR`, `--file F`, `--doubles DIR`, `--live`.
fn recipe_flag(parser: &mut Parser, flags: &mut Flags, flag: &str) -> Result<(), Error> {
    if flag == "live" {
        flags.live = true;
        flags.given.push("--live");
        return Ok(());
    }
    let value = parser.value().map_err(usage)?.string().map_err(usage)?;
    let (slot, name) = match flag {
        "dir" => (&mut flags.dir, "--dir"),
        "file" => (&mut flags.file, "--file"),
        _ => (&mut flags.doubles, "--doubles"),
    };
    *slot = Some(value);
    flags.given.push(name);
    Ok(())
}

/// The flags of a deploy invocation, and its words (verb, FILE, …) in order: read
/// lossily, and as given (only FILE may be anything but UTF-8).
type Words = (Vec<String>, Vec<OsString>);

fn read_flags(args: Vec<OsString>) -> Result<(Flags, Words), Error> {
    let mut parser = Parser::from_args(args);
    let mut flags = Flags::default();
    let mut words: Vec<String> = Vec::new();
    let mut raw: Vec<OsString> = Vec::new();
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => flags.help = true,
            Arg::Short('V') | Arg::Long("version") => flags.version = true,
            Arg::Long("json") => {
                if parser.optional_value().is_some() {
                    return Err(Error::Usage("`--json` takes no value".into()));
                }
                flags.json = true;
            }
            Arg::Long(flag @ ("force" | "migrate" | "purge" | "yes")) => {
                let flag = flag.to_string();
                switch_flag(&mut flags, &flag);
            }
            Arg::Long(flag @ ("dir" | "file" | "doubles" | "live")) => {
                let flag = flag.to_string();
                recipe_flag(&mut parser, &mut flags, &flag)?;
            }
            Arg::Long("lock-wait") => {
                flags.lock_wait = number(&mut parser, "--lock-wait", "SECONDS")?;
                flags.given.push("--lock-wait");
            }
            Arg::Long("to") => {
                flags.to = Some(number(&mut parser, "--to", "a release number")?);
                flags.given.push("--to");
            }
            Arg::Long("preview") => {
                let name = parser.value().map_err(usage)?.string().map_err(usage)?;
                if name.starts_with('-') {
                    return Err(Error::Usage(format!(
                        "`--preview` needs a NAME, got the flag `{name}`"
                    )));
                }
                flags.preview = Some(name);
                flags.given.push("--preview");
            }
            Arg::Long("id") => {
                let id = parser.value().map_err(usage)?.string().map_err(usage)?;
                if id.starts_with('-') {
                    return Err(Error::Usage(format!(
                        "`--id` needs an ID, got the flag `{id}`"
                    )));
                }
                flags.id = Some(id);
            }
            Arg::Long(other) => return Err(unknown_flag(&format!("--{other}"))),
            Arg::Short(c) => return Err(unknown_flag(&format!("-{c}"))),
            // A word that is not UTF-8 can only be the FILE (checked below); it is kept
            // as given and read lossily for the verb's words.
            Arg::Value(v) => {
                words.push(v.to_string_lossy().into_owned());
                raw.push(v);
            }
        }
    }
    Ok((flags, (words, raw)))
}

fn parse_deploy(args: Vec<OsString>, program: &str, cwd: &Path) -> Result<Cmd, Error> {
    let (flags, (words, mut raw)) = read_flags(args)?;
    if flags.version {
        return Ok(Cmd::Version { json: flags.json });
    }
    let mut words = words.into_iter();
    let Some(first) = words.next() else {
        return Ok(Cmd::Help {
            text: main_help(program),
            json: flags.json,
        });
    };
    let rest: Vec<String> = words.collect();
    match first.as_str() {
        "help" => return help_for(rest.first().map(String::as_str), program, flags.json),
        "completions" => return completions(&rest),
        _ => {}
    }
    let Some(info) = VerbInfo::find(&first) else {
        if flags.help {
            return Ok(Cmd::Help {
                text: main_help(program),
                json: flags.json,
            });
        }
        // `deploy FILE` is `plan FILE`; anything else that is not a verb is a usage error.
        if rest.is_empty() && looks_like_file(cwd, raw[0].as_ref()) {
            return Ok(Cmd::Deploy(Deploy {
                verb: Verb::Plan { live: false },
                file: raw.pop().map(Into::into),
                json: flags.json,
                id: flags.id,
                lock_wait: 0,
                preview: None,
            }));
        }
        return Err(unknown_verb(&first));
    };
    if flags.help {
        return Ok(Cmd::Help {
            text: info.help(program),
            json: flags.json,
        });
    }
    verb_cmd(info, rest, flags, raw, program)
}

/// A known verb with its words and flags → the command.
fn verb_cmd(
    info: &VerbInfo,
    rest: Vec<String>,
    flags: Flags,
    mut raw: Vec<OsString>,
    program: &str,
) -> Result<Cmd, Error> {
    for flag in &flags.given {
        if !info.flags.contains(flag) {
            return Err(Error::Usage(format!(
                "`{}` takes no `{flag}` — see `{program} help {}`",
                info.name, info.name
            )));
        }
    }
    let (verb, file) = verb_args(info, rest, &flags)?;
    // The FILE is the last word; only it may be anything but UTF-8.
    let file = file.and(raw.pop()).map(std::path::PathBuf::from);
    if let Some(bad) = raw.iter().find(|w| w.to_str().is_none()) {
        return Err(Error::Usage(format!(
            "the argument {bad:?} is not UTF-8 — only FILE may be any bytes"
        )));
    }
    Ok(Cmd::Deploy(Deploy {
        verb,
        file,
        json: flags.json,
        id: flags.id,
        lock_wait: flags.lock_wait,
        preview: flags.preview.clone(),
    }))
}

/// A flag's whole-number value.
fn number<T: std::str::FromStr>(parser: &mut Parser, flag: &str, what: &str) -> Result<T, Error> {
    let text = parser.value().map_err(usage)?.string().map_err(usage)?;
    text.parse().map_err(|_| {
        Error::Usage(format!(
            "`{flag}` needs {what} as a whole number, got `{text}`"
        ))
    })
}

/// Every flag any verb takes.
pub const FLAGS: &[&str] = &[
    "--json",
    "--id",
    "--force",
    "--migrate",
    "--live",
    "--lock-wait",
    "--preview",
    "--to",
    "--dir",
    "--file",
    "--doubles",
    "--help",
    "--version",
];

fn unknown_flag(flag: &str) -> Error {
    let hint = did_you_mean(flag, FLAGS.iter().copied())
        .map(|k| format!(" — did you mean `{k}`?"))
        .unwrap_or_default();
    Error::Usage(format!("unknown flag `{flag}`{hint}"))
}

fn unknown_verb(word: &str) -> Error {
    let names = VERBS.iter().map(|v| v.name);
    match did_you_mean(word, names.clone()) {
        Some(near) => Error::Usage(format!("unknown verb `{word}` — did you mean `{near}`?")),
        None => Error::Usage(format!(
            "unknown verb `{word}` — the verbs are: {}",
            names.collect::<Vec<_>>().join(", ")
        )),
    }
}

fn help_for(word: Option<&str>, program: &str, json: bool) -> Result<Cmd, Error> {
    let text = match word {
        None => main_help(program),
        Some(word) => VerbInfo::find(word)
            .ok_or_else(|| unknown_verb(word))?
            .help(program),
    };
    Ok(Cmd::Help { text, json })
}

fn completions(rest: &[String]) -> Result<Cmd, Error> {
    let shell = match rest {
        [s] if s == "bash" => Shell::Bash,
        [s] if s == "zsh" => Shell::Zsh,
        [s] if s == "fish" => Shell::Fish,
        _ => {
            return Err(Error::Usage(
                "`completions` takes one shell: bash, zsh or fish".into(),
            ));
        }
    };
    Ok(Cmd::Completions { shell })
}

/// The verb's own words: an init place, a secrets action, at most one FILE.
fn verb_args(
    info: &VerbInfo,
    mut rest: Vec<String>,
    flags: &Flags,
) -> Result<(Verb, Option<String>), Error> {
    let verb = match info.name {
        "init" => {
            let place = rest.first().and_then(|w| Place::parse(w));
            if place.is_some() {
                rest.remove(0);
            }
            Verb::Init(InitArgs {
                place,
                force: flags.force,
            })
        }
        "secrets" => Verb::Secrets(secrets_action(&mut rest)?),
        "recipe" => Verb::Recipe(recipe_action(&mut rest, flags)?),
        "validate" => Verb::Validate,
        "plan" => Verb::Plan { live: flags.live },
        "apply" => Verb::Apply { force: flags.force },
        "releases" => Verb::Releases,
        "rollback" => Verb::Rollback { to: flags.to },
        "previews" => Verb::Previews,
        "verify" => Verb::Verify,
        "status" => Verb::Status,
        "logs" => Verb::Logs,
        "url" => Verb::Url,
        "down" if flags.purge && !flags.yes => {
            return Err(Error::Usage(
                "`down --purge` destroys the deployment's data too (in the cloud: the app, its volume and its secrets) and cannot be undone — add `--yes` to confirm; plain `down` keeps the data"
                    .into(),
            ));
        }
        "down" => Verb::Down { purge: flags.purge },
        "doctor" => Verb::Doctor,
        "up-local" => Verb::Local,
        "connect" => Verb::Connect,
        "fmt" if flags.migrate => Verb::Fmt,
        "fmt" => {
            return Err(Error::Usage(
                "`fmt` needs `--migrate` (it rewrites `#+DEPLOY_*` keyword lines into the drawer)"
                    .into(),
            ));
        }
        other => unreachable!("`{other}` has an entry in VERBS"),
    };
    if !info.takes_file
        && let Some(extra) = rest.first()
    {
        return Err(Error::Usage(format!(
            "`{}` takes no file (got `{extra}`)",
            info.name
        )));
    }
    if rest.len() > 1 {
        return Err(Error::Usage(format!(
            "`{}` takes one FILE, got {}: {}",
            info.name,
            rest.len(),
            rest.join(" ")
        )));
    }
    Ok((verb, rest.pop()))
}

fn recipe_action(rest: &mut Vec<String>, flags: &Flags) -> Result<RecipeAction, Error> {
    let (action, name) = match rest.as_slice() {
        [action, name, ..] => (action.clone(), name.clone()),
        [action] if action == "new" || action == "check" => {
            return Err(Error::Usage(format!("`recipe {action}` needs a NAME")));
        }
        _ => {
            return Err(Error::Usage(
                "`recipe` needs an action and a NAME: `recipe new NAME` or `recipe check NAME`"
                    .into(),
            ));
        }
    };
    rest.drain(..2);
    let only = |allowed: &[&str]| -> Result<(), Error> {
        match flags
            .given
            .iter()
            .find(|f| !allowed.contains(f) && **f != "--json")
        {
            Some(f) => Err(Error::Usage(format!("`recipe {action}` takes no `{f}`"))),
            None => Ok(()),
        }
    };
    match action.as_str() {
        "new" => {
            only(&["--dir", "--force"])?;
            Ok(RecipeAction::New {
                name,
                dir: flags.dir.clone(),
                force: flags.force,
            })
        }
        "check" => {
            only(&["--file", "--doubles", "--live"])?;
            if flags.live && flags.doubles.is_some() {
                return Err(Error::Usage(
                    "`--doubles` and `--live` exclude each other: doubles, or the real CLIs".into(),
                ));
            }
            Ok(RecipeAction::Check {
                name,
                file: flags.file.clone(),
                doubles: flags.doubles.clone(),
                live: flags.live,
            })
        }
        other => Err(Error::Usage(format!(
            "unknown recipe action `{other}` (new or check)"
        ))),
    }
}

fn secrets_action(rest: &mut Vec<String>) -> Result<SecretsAction, Error> {
    if rest.is_empty() {
        return Err(Error::Usage(
            "`secrets` needs an action: set, generate, list, unset or stage".into(),
        ));
    }
    let action = rest.remove(0);
    let mut name = || -> Result<String, Error> {
        if rest.is_empty() {
            return Err(Error::Usage(format!("`secrets {action}` needs a NAME")));
        }
        Ok(rest.remove(0))
    };
    Ok(match action.as_str() {
        "set" => {
            let word = name()?;
            match word.split_once('=') {
                Some((name, value)) => SecretsAction::Set {
                    name: name.into(),
                    inline: Some(value.into()),
                },
                None => SecretsAction::Set {
                    name: word,
                    inline: None,
                },
            }
        }
        "generate" => SecretsAction::Generate { name: name()? },
        "unset" => SecretsAction::Unset { name: name()? },
        "list" => SecretsAction::List,
        "stage" => SecretsAction::Stage,
        other => {
            let hint = did_you_mean(other, ["set", "generate", "list", "unset", "stage"])
                .map(|n| format!(" — did you mean `{n}`?"))
                .unwrap_or_default();
            return Err(Error::Usage(format!(
                "unknown secrets action `{other}`{hint} (set, generate, list, unset or stage)"
            )));
        }
    })
}

/// A word that is not a verb is a FILE if it plausibly names one (`x.org`, a path) or
/// resolves to one (a bare name in `deployments/`).
fn looks_like_file(cwd: &Path, word: &std::ffi::OsStr) -> bool {
    use std::os::unix::ffi::OsStrExt;
    word.as_bytes().ends_with(b".org")
        || word.as_bytes().contains(&b'/')
        || crate::load::resolve_file(cwd, Some(Path::new(word))).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> Result<Cmd, Error> {
        parse(
            words.iter().map(OsString::from).collect(),
            false,
            "cargo xtask deploy",
            Path::new("/nonexistent"),
        )
    }

    #[test]
    fn typos_get_a_did_you_mean() {
        let e = parse_words(&["deploy", "aply", "x.org"]).unwrap_err();
        assert_eq!(e.message(), "unknown verb `aply` — did you mean `apply`?");
        let e = parse_words(&["deploy", "apply", "--forse"]).unwrap_err();
        assert_eq!(
            e.message(),
            "unknown flag `--forse` — did you mean `--force`?"
        );
    }

    #[test]
    fn json_survives_every_argument_shape() {
        assert!(wants_json(&["--json=1".into()]));
        assert!(parse_words(&["deploy", "validate", "--json=1"]).is_err());
        let e = parse_words(&["deploy", "validate", "--id", "--json"]).unwrap_err();
        assert_eq!(e.code(), 2);
        assert!(matches!(
            parse_words(&["deploy", "--help", "--json"]),
            Ok(Cmd::Help { json: true, .. })
        ));
    }

    #[test]
    fn a_flag_a_verb_does_not_take_is_refused() {
        let e = parse_words(&["deploy", "status", "--force"]).unwrap_err();
        assert_eq!(e.code(), 2);
    }

    #[test]
    fn every_verb_has_its_own_help() {
        for v in VERBS {
            let text = v.help("wb-deploy");
            assert!(
                text.starts_with(&format!("wb-deploy {}:", v.name)),
                "{text}"
            );
            assert!(text.contains("Example:"), "{text}");
        }
    }
}
