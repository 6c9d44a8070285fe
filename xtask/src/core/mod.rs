//! The pure core: drawer → deployment → engine env, artifacts and the plan. Functions of
//! their inputs only — no file system, no environment, no processes, no clock (a tidy
//! test in `tests/tidy.rs` fails if a file here names them). The shell around it
//! captures the world at the edge and hands values in.

pub mod contract;
pub mod credentials;
pub mod deployment;
pub mod diagnostic;
pub mod drawer;
pub mod engine_env;
pub mod escape;
pub mod names;
pub mod plan;
pub mod preview;
pub mod render;
pub mod secret;
pub mod validate;
