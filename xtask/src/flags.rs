//! The command line: `cargo xtask deploy <verb> [FILE] [--json]`, `cargo xtask engine
//! image`, `cargo xtask ci`. Parsing only; every verb lives in `verbs/`.

use lexopt::{Arg, Parser, ValueExt};

use crate::deployment::{Axis, Place};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Init,
    Validate,
    Plan,
    Apply,
    Verify,
    Status,
    Logs,
    Url,
    Down,
    Doctor,
    Local,
    Secrets,
    Fmt,
}

impl Verb {
    pub const ALL: &[(&'static str, Verb)] = &[
        ("init", Verb::Init),
        ("validate", Verb::Validate),
        ("plan", Verb::Plan),
        ("apply", Verb::Apply),
        ("verify", Verb::Verify),
        ("status", Verb::Status),
        ("logs", Verb::Logs),
        ("url", Verb::Url),
        ("down", Verb::Down),
        ("doctor", Verb::Doctor),
        ("local", Verb::Local),
        ("secrets", Verb::Secrets),
        ("fmt", Verb::Fmt),
    ];

    pub fn parse(word: &str) -> Option<Verb> {
        Verb::ALL
            .iter()
            .find(|(name, _)| *name == word)
            .map(|(_, v)| *v)
    }

    pub fn name(self) -> &'static str {
        Verb::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .map(|(name, _)| *name)
            .unwrap()
    }
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployArgs {
    pub verb: Verb,
    pub file: Option<String>,
    pub json: bool,
    pub id: Option<String>,
    pub force: bool,
    /// `down --purge`: destroy the data too (only with `yes`).
    pub purge: bool,
    /// `down --purge --yes`: the confirmation `--purge` needs.
    pub yes: bool,
    pub migrate: bool,
    pub init_place: Option<Place>,
    pub secrets: Option<SecretsAction>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Deploy(DeployArgs),
    EngineImage { tag: Option<String> },
    Ci,
    Help(String),
}

/// A usage error: exit 2, with the text saying what to type instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage(pub String);

impl From<lexopt::Error> for Usage {
    fn from(e: lexopt::Error) -> Usage {
        Usage(e.to_string())
    }
}

pub const MAIN_HELP: &str = "\
The deploy kit: describe where the engine runs in a small org file, validate it, and converge.

Usage:
  cargo xtask deploy <verb> [FILE] [--json]   the kit (run `cargo xtask deploy --help`)
  cargo xtask engine image [--tag TAG]        build the reference engine's OCI image
  cargo xtask ci                              everything CI checks, locally
";

pub const DEPLOY_HELP: &str = "\
Usage: cargo xtask deploy <verb> [FILE] [options]
       cargo xtask deploy FILE              (same as `plan FILE`)

FILE defaults to ./deployment.org; a bare name such as `local` also finds
deployments/local.org.

Describe:
  init [local|cloud] [FILE] [--force]  write a starter file (never clobbers without --force)
  validate [FILE]                      check the file; deploys nothing, touches nothing
  plan [FILE]                          validate + the engine env (secrets redacted) + fly.toml
                                       (cloud) + what `apply` would change
  fmt --migrate [FILE]                 move `#+DEPLOY_*` keyword lines into the drawer

Converge:
  apply [FILE] [--force]               make it so; an unchanged deployment changes nothing
  verify [FILE]                        prove the live engine answers /health with 200
  status | logs | url [FILE]           presence and endpoint · recent logs · the URL
  down [FILE]                          tear down, keep the data
  down [FILE] --purge --yes            tear down and destroy the data too (cloud)
  local                                zero-config local engine, no file needed

Secrets (values never in the file, never printed):
  secrets set NAME [FILE]              value read from stdin (keeps it out of shell history)
  secrets set NAME=VALUE [FILE]        value inline
  secrets generate NAME [FILE]         32 random bytes, hex (e.g. WB_SIGNING_KEY)
  secrets list [FILE]                  names and where each comes from (store · env · unset)
  secrets unset NAME [FILE]

Prerequisites:
  doctor                               check tools, list recipes and where they were found

Options:
  --json        one JSON object on stdout ({\"ok\", \"verb\", ...}); human text stays on stderr
  --id ID       pick one deployment in a file holding several drawers with distinct :ID:s
  --force       init: overwrite; apply: re-run even if nothing changed
  --migrate     fmt: rewrite the keyword form (required; fmt does nothing else yet)
  -h, --help    this text

Exit codes: 0 success · 1 failure · 2 usage · a recipe's own non-zero code, passed through.
Environment: WB_HOME (state dir), WB_PROVIDERS_DIR (recipes), WB_VMM_BACKEND (local backend),
WB_ENGINE_BIN (process backend), WB_VERIFY_URL (cloud verify target),
NO_COLOR (plain output).

Example:
  cargo xtask deploy validate deployments/local.org
  cargo xtask deploy plan deployments/cloud-saas.org --json
";

pub fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Command, Usage> {
    let mut parser = Parser::from_args(args);
    let first = match parser.next()? {
        None => return Ok(Command::Help(MAIN_HELP.into())),
        Some(Arg::Short('h') | Arg::Long("help")) => return Ok(Command::Help(MAIN_HELP.into())),
        Some(Arg::Value(v)) => v.string()?,
        Some(other) => return Err(other.unexpected().into()),
    };
    match first.as_str() {
        "deploy" => parse_deploy(&mut parser),
        "engine" => parse_engine(&mut parser),
        "ci" => match parser.next()? {
            None => Ok(Command::Ci),
            Some(Arg::Short('h') | Arg::Long("help")) => {
                Ok(Command::Help("Usage: cargo xtask ci\n\nRuns fmt, clippy, shellcheck, the flake parse and every test, as CI does.\n".into()))
            }
            Some(other) => Err(other.unexpected().into()),
        },
        "help" => Ok(Command::Help(MAIN_HELP.into())),
        other => Err(Usage(format!("unknown command `{other}` — expected `deploy`, `engine` or `ci`"))),
    }
}

fn parse_engine(parser: &mut Parser) -> Result<Command, Usage> {
    let help = "Usage: cargo xtask engine image [--tag TAG]\n\nBuilds the reference engine as a static binary and an OCI image FROM scratch\nwith podman or docker (default tag localhost/wb-engine:dev).\n";
    let mut saw_image = false;
    let mut tag = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(Command::Help(help.into())),
            Arg::Long("tag") => tag = Some(parser.value()?.string()?),
            Arg::Value(v) if !saw_image && v == "image" => saw_image = true,
            other => return Err(other.unexpected().into()),
        }
    }
    if !saw_image {
        return Err(Usage(format!("expected `engine image`\n\n{help}")));
    }
    Ok(Command::EngineImage { tag })
}

fn parse_deploy(parser: &mut Parser) -> Result<Command, Usage> {
    let mut positionals: Vec<String> = Vec::new();
    let mut args = DeployArgs {
        verb: Verb::Plan,
        file: None,
        json: false,
        id: None,
        force: false,
        purge: false,
        yes: false,
        migrate: false,
        init_place: None,
        secrets: None,
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(Command::Help(DEPLOY_HELP.into())),
            Arg::Long("json") => args.json = true,
            Arg::Long("force") => args.force = true,
            Arg::Long("purge") => args.purge = true,
            Arg::Long("yes") => args.yes = true,
            Arg::Long("migrate") => args.migrate = true,
            Arg::Long("id") => args.id = Some(parser.value()?.string()?),
            Arg::Value(v) => positionals.push(v.string()?),
            other => return Err(other.unexpected().into()),
        }
    }
    let mut rest = positionals.into_iter();
    let Some(first) = rest.next() else {
        return Err(Usage(format!("name a verb\n\n{DEPLOY_HELP}")));
    };
    let verb = match Verb::parse(&first) {
        Some(verb) => verb,
        None => {
            // `deploy FILE` is `plan FILE`; anything else that is not a verb is a usage error.
            if rest.len() == 0 && looks_like_file(&first) {
                args.file = Some(first);
                return Ok(Command::Deploy(args));
            }
            let names: Vec<&str> = Verb::ALL.iter().map(|(n, _)| *n).collect();
            return Err(Usage(format!(
                "unknown verb `{first}` — the verbs are: {}",
                names.join(", ")
            )));
        }
    };
    args.verb = verb;
    let mut rest: Vec<String> = rest.collect();
    match verb {
        Verb::Init => {
            if let Some(word) = rest.first()
                && let Some(place) = Place::parse(word)
            {
                args.init_place = Some(place);
                rest.remove(0);
            }
        }
        Verb::Secrets => {
            if rest.is_empty() {
                return Err(Usage(
                    "`secrets` needs an action: set, generate, list or unset".into(),
                ));
            }
            let action = rest.remove(0);
            let mut name = || -> Result<String, Usage> {
                if rest.is_empty() {
                    return Err(Usage(format!("`secrets {action}` needs a NAME")));
                }
                Ok(rest.remove(0))
            };
            args.secrets = Some(match action.as_str() {
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
                other => {
                    return Err(Usage(format!(
                        "unknown secrets action `{other}` — set, generate, list or unset"
                    )));
                }
            });
        }
        Verb::Local | Verb::Doctor => {
            if let Some(extra) = rest.first() {
                return Err(Usage(format!(
                    "`{}` takes no file (got `{extra}`)",
                    verb.name()
                )));
            }
        }
        _ => {}
    }
    if rest.len() > 1 {
        return Err(Usage(format!(
            "`{}` takes one FILE, got {}: {}",
            verb.name(),
            rest.len(),
            rest.join(" ")
        )));
    }
    args.file = rest.pop();
    if (args.purge || args.yes) && verb != Verb::Down {
        return Err(Usage(format!(
            "`--purge` and `--yes` belong to `down` (got `{}`)",
            verb.name()
        )));
    }
    if args.purge && !args.yes {
        return Err(Usage(
            "`down --purge` destroys the deployment's data too (in the cloud: the app, its volume and its secrets) and cannot be undone — add `--yes` to confirm; plain `down` keeps the data"
                .into(),
        ));
    }
    if verb == Verb::Fmt && !args.migrate {
        return Err(Usage(
            "`fmt` needs `--migrate` (it rewrites `#+DEPLOY_*` keyword lines into the drawer)"
                .into(),
        ));
    }
    Ok(Command::Deploy(args))
}

/// A word after `deploy` that is not a verb is a FILE if it names one (or plausibly could).
fn looks_like_file(word: &str) -> bool {
    word.ends_with(".org") || word.contains('/') || crate::verbs::resolve_file(Some(word)).exists()
}
