//! The deploy kit's library: a pure core (drawer → deployment → engine env, fly.toml,
//! plan) and a thin shell around it (secret store, state, recipes and the sealed spawn,
//! local backends). `main.rs` is flags → one match → exit code. See README.md and docs/.

pub mod cli;
pub mod cloud;
pub mod deployment;
pub mod diagnostic;
pub mod drawer;
pub mod engine_env;
pub mod flags;
pub mod fly_toml;
pub mod local;
pub mod recipes;
pub mod secrets;
pub mod spawn;
pub mod state;
pub mod validate;
pub mod verbs;
