//! Flags → one match → exit code. The only place that prints the JSON object and maps
//! an outcome to the process's exit code.

use serde_json::Value;

use crate::flags::{self, Command, DeployArgs, Usage, Verb};
use crate::verbs::{self, Ctx, Outcome};

pub fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> i32 {
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    let wants_json = args.iter().any(|a| a == "--json");
    let command = match flags::parse(args) {
        Ok(command) => command,
        Err(Usage(message)) => {
            eprintln!("error: {message}");
            if wants_json {
                println!(
                    "{}",
                    serde_json::json!({ "ok": false, "verb": Value::Null, "error": message })
                );
            }
            return 2;
        }
    };
    match command {
        Command::Help(text) => {
            print!("{text}");
            0
        }
        Command::Ci => crate::verbs::ci::run(),
        Command::EngineImage { tag } => crate::local::image::build_command(tag.as_deref()),
        Command::Deploy(args) => {
            let ctx = Ctx::from_env(args.json);
            let outcome = deploy(&ctx, &args);
            finish(&ctx, args.verb, outcome)
        }
    }
}

fn deploy(ctx: &Ctx, args: &DeployArgs) -> Outcome {
    match args.verb {
        Verb::Init => {
            return verbs::init::run(ctx, args.init_place, args.file.as_deref(), args.force);
        }
        Verb::Doctor => return verbs::doctor::run(ctx),
        Verb::Local => return crate::local::zero_config(ctx),
        _ => {}
    }
    let require_secrets = matches!(
        args.verb,
        Verb::Validate | Verb::Plan | Verb::Apply | Verb::Fmt
    );
    let loaded = match verbs::load(args.file.as_deref(), args.id.as_deref(), require_secrets) {
        Ok(loaded) => loaded,
        Err(e) => return Outcome::error(e),
    };
    match args.verb {
        Verb::Validate => verbs::validate_verb::run(ctx, &loaded),
        Verb::Plan => verbs::plan::run(ctx, &loaded),
        Verb::Fmt => verbs::fmt::run(ctx, &loaded),
        Verb::Secrets => verbs::secrets::run(
            ctx,
            &loaded,
            args.secrets.as_ref().expect("parsed with an action"),
        ),
        Verb::Apply | Verb::Verify | Verb::Status | Verb::Logs | Verb::Url | Verb::Down => {
            verbs::lifecycle::run(ctx, args.verb, &loaded, args.force, args.purge)
        }
        Verb::Init | Verb::Doctor | Verb::Local => unreachable!("handled above"),
    }
}

fn finish(ctx: &Ctx, verb: Verb, outcome: Outcome) -> i32 {
    if let Some(Value::String(message)) = outcome.fields.get("error") {
        eprintln!(
            "{}: {message}",
            if ctx.color {
                "\x1b[1;31merror\x1b[0m"
            } else {
                "error"
            }
        );
    }
    if ctx.json {
        let mut object = serde_json::Map::new();
        object.insert("ok".into(), Value::Bool(outcome.code == 0));
        object.insert("verb".into(), Value::String(verb.name().into()));
        object.extend(outcome.fields);
        println!("{}", Value::Object(object));
    }
    outcome.code
}
