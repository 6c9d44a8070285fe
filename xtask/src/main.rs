//! `xtask`: the repository's tasks — `cargo xtask deploy <verb>`, `engine image`, `ci`.

fn main() {
    std::process::exit(xtask::run(xtask::edge::Edge::capture(), false));
}
