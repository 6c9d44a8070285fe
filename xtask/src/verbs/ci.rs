//! `cargo xtask ci`: everything CI checks, in one command (the README's test command).

pub fn run() -> i32 {
    eprintln!("error: `ci` is not built yet");
    1
}
