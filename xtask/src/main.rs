fn main() {
    std::process::exit(xtask::cli::main(std::env::args_os().skip(1)));
}
