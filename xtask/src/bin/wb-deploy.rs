//! `wb-deploy`: the deploy kit as a standalone binary, verbs at the top level
//! (`wb-deploy apply FILE`). Installable with `cargo install --path xtask`.

fn main() {
    std::process::exit(xtask::run(xtask::edge::Edge::capture(), true));
}
