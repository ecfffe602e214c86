# An offline check of flake.nix's structure: its `outputs` applied to a stub
# of nixpkgs (no network, no flake.lock, any Nix from 2.8 on):
#
#   nix-instantiate --eval --strict .ci/flake-stub.nix
#
# The stub's builders return their arguments instead of derivations, so the
# result shows what each output would build from; the asserts below check
# the parts that matter (binaries, native inputs, no CI variables in the
# checks, the dev shell's tools). Building anything, and `nix flake check`,
# need the real nixpkgs.
let
  flake = import ../flake.nix;

  systems = [
    "x86_64-linux"
    "aarch64-linux"
    "x86_64-darwin"
    "aarch64-darwin"
  ];

  lib = {
    genAttrs =
      names: f:
      builtins.listToAttrs (
        map (name: {
          inherit name;
          value = f name;
        }) names
      );
    cleanSource = src: src;
    licenses = {
      mit = "MIT";
      asl20 = "Apache-2.0";
    };
  };

  pkgsFor =
    system:
    let
      tool = name: "<${name} for ${system}>";
    in
    {
      inherit lib;
      rustPlatform = {
        buildRustPackage = args: args // { builder = "buildRustPackage"; };
        rustLibSrc = tool "rust-src";
      };
      mkShell = args: args // { builder = "mkShell"; };
    }
    // lib.genAttrs [
      "pkg-config"
      "openssl"
      "zlib"
      "rustc"
      "cargo"
      "rustfmt"
      "clippy"
      "rust-analyzer"
      "nix"
      "openssh"
      "python3"
    ] tool;

  nixpkgs = {
    inherit lib;
    legacyPackages = lib.genAttrs systems pkgsFor;
  };

  outputs = flake.outputs {
    self = outputs;
    inherit nixpkgs;
  };

  names = builtins.attrNames;
  has = x: list: builtins.elem x list;
  check = cond: msg: if cond then true else throw "flake stub check: ${msg}";

  perSystem =
    system:
    let
      pkgs = pkgsFor system;
      p = outputs.packages.${system};
      c = outputs.checks.${system};
      shell = outputs.devShells.${system}.default;
    in
    assert check (names p == [ "default" "nixwire" ]) "packages of ${system}";
    assert check (p.default == p.nixwire) "default = nixwire";
    assert check (p.nixwire.builder == "buildRustPackage") "nixwire built by buildRustPackage";
    assert check (p.nixwire.cargoLock.lockFile == ../Cargo.lock) "cargoLock.lockFile";
    assert check (p.nixwire.cargoBuildFlags == [
      "-p"
      "nixwire"
      "-p"
      "nixwire-replay"
      "-p"
      "nixwire-conformance"
    ]) "the three binaries";
    assert check (p.nixwire.nativeBuildInputs == [ pkgs.pkg-config ]) "pkg-config";
    assert check (p.nixwire.buildInputs == [ pkgs.openssl pkgs.zlib ]) "openssl, zlib";
    assert check (p.nixwire.meta.mainProgram == "nixwire") "mainProgram";
    assert check (p.nixwire.meta.license == [ "MIT" "Apache-2.0" ]) "license";
    assert check (names c == [ "clippy" "doc" "fmt" "test" ]) "checks of ${system}";
    assert check (builtins.all (
      name:
      let
        drv = c.${name};
      in
      drv.doCheck
      && drv.dontCargoBuild
      && drv.installPhase == "touch $out"
      && builtins.match ".*unset CI NIXWIRE_REQUIRE_NIX.*" drv.checkPhase != null
      && !(drv ? CI)
      && !(drv ? NIXWIRE_REQUIRE_NIX)
    ) (names c)) "checks: custom checkPhase, CI and NIXWIRE_REQUIRE_NIX unset";
    assert check (builtins.match ".*cargo test --workspace.*" c.test.checkPhase != null) "test";
    assert check (has pkgs.rustfmt c.fmt.nativeBuildInputs) "fmt has rustfmt";
    assert check (has pkgs.clippy c.clippy.nativeBuildInputs) "clippy has clippy";
    assert check (
      builtins.match ".*cargo clippy --workspace --all-targets.*-D warnings.*" c.clippy.checkPhase != null
    ) "clippy -D warnings";
    assert check (names outputs.devShells.${system} == [ "default" ]) "devShells of ${system}";
    assert check (builtins.all (t: has pkgs.${t} (shell.nativeBuildInputs ++ shell.buildInputs)) [
      "rustc"
      "cargo"
      "rustfmt"
      "clippy"
      "rust-analyzer"
      "pkg-config"
      "openssl"
      "zlib"
      "nix"
      "openssh"
      "python3"
    ]) "dev shell tools";
    {
      packages = names p;
      checks = names c;
      devShells = names outputs.devShells.${system};
      nixwire = {
        inherit (p.nixwire)
          pname
          version
          cargoBuildFlags
          nativeBuildInputs
          buildInputs
          meta
          ;
      };
    };
in
assert check (flake.inputs == {
  nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
}) "one input, nixpkgs";
assert check (names outputs == [ "checks" "devShells" "packages" ]) "outputs";
assert check (names outputs.packages == builtins.sort builtins.lessThan systems) "systems";
{
  description = flake.description;
  systems = names outputs.packages;
  x86_64-linux = perSystem "x86_64-linux";
  allSystems = builtins.all (s: builtins.isAttrs (perSystem s)) systems;
}
