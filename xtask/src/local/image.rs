//! `cargo xtask engine image`: the reference engine as a static binary in an OCI image.

pub fn build_command(_tag: Option<&str>) -> i32 {
    eprintln!("error: `engine image` is not built yet");
    1
}
