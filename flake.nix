{
  description = "The deploy kit: `cargo xtask deploy <verb> <file>` — its pinned toolchain";

  # `nix develop` gives everything the kit, its tests and CI use, from the pins in
  # flake.lock: Rust 1.95 (as CI runs it), flyctl, podman and krunvm (Linux), shellcheck,
  # cargo-insta, cargo-nextest and hyperfine.
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    rust-overlay = {
      url = "github:oxalica/rust-overlay";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs = { self, nixpkgs, rust-overlay }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f (import nixpkgs {
        inherit system;
        overlays = [ (import rust-overlay) ];
      }));
    in
    {
      devShells = forAllSystems (pkgs:
        let
          rust = pkgs.rust-bin.stable."1.95.0".default.override {
            extensions = [ "rust-src" "clippy" "rustfmt" ];
          };
          linuxOnly = pkgs.lib.optionals pkgs.stdenv.isLinux [
            pkgs.podman
            pkgs.runc
            pkgs.krunvm
          ];
        in
        {
          default = pkgs.mkShell {
            packages = [
              rust
              pkgs.flyctl
              pkgs.shellcheck
              pkgs.cargo-insta
              pkgs.cargo-nextest
              pkgs.hyperfine
              pkgs.python3
            ] ++ linuxOnly;
            shellHook = ''
              echo "deploy kit dev shell: $(rustc --version); try: cargo xtask deploy --help"
            '';
          };
        });
    };
}
