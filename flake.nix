{
  description = "nixwire: Nix's remote-building protocols (serve, worker, machines files) in Rust";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # The workspace's version, license and rust-version (1.88; nixos-unstable's
      # rustc is newer) come from its Cargo.toml.
      workspace = (builtins.fromTOML (builtins.readFile ./Cargo.toml)).workspace.package;

      # What every derivation here shares: the source, the dependencies from
      # Cargo.lock (all from crates.io, so no outputHashes), and what the
      # `ssh2` crate of nixwire-blocking needs to build: libssh2-sys compiles
      # its bundled libssh2 against OpenSSL (openssl-sys) and zlib
      # (libz-sys), found through pkg-config.
      common = pkgs: {
        version = workspace.version;
        src = pkgs.lib.cleanSource ./.;
        cargoLock.lockFile = ./Cargo.lock;
        nativeBuildInputs = [ pkgs.pkg-config ];
        buildInputs = [
          pkgs.openssl
          pkgs.zlib
        ];
      };

      # A check: `command` run over the workspace, with the vendored
      # dependencies, and nothing installed. Neither `CI` nor
      # `NIXWIRE_REQUIRE_NIX` is set (the build environment has neither, and
      # the command unsets them to be sure), so the tests that need Nix or the
      # loopback sshd, which the sandbox lacks, say so and pass.
      check =
        pkgs: name: tools: command:
        pkgs.rustPlatform.buildRustPackage (
          common pkgs
          // {
            pname = "nixwire-${name}";
            nativeBuildInputs = (common pkgs).nativeBuildInputs ++ tools;
            dontCargoBuild = true;
            doCheck = true;
            checkPhase = ''
              runHook preCheck
              unset CI NIXWIRE_REQUIRE_NIX
              unset NIXWIRE_SSH_HOST NIXWIRE_SSH_PORT NIXWIRE_SSH_USER NIXWIRE_SSH_KEY NIXWIRE_SSH_HOST_KEY
              ${command}
              runHook postCheck
            '';
            installPhase = "touch $out";
          }
        );
    in
    {
      packages = forAllSystems (
        pkgs:
        let
          nixwire = pkgs.rustPlatform.buildRustPackage (
            common pkgs
            // {
              pname = "nixwire";
              # The three binaries: nixwire, nixwire-replay and
              # nixwire-conformance (which finds nixwire-replay beside it).
              cargoBuildFlags = [
                "-p"
                "nixwire"
                "-p"
                "nixwire-replay"
                "-p"
                "nixwire-conformance"
              ];
              # The test suite is checks.<system>.test.
              doCheck = false;
              meta = {
                description = "Nix's remote-building protocols (serve, worker, machines files): the nixwire command line tool";
                # The workspace's `license`, "MIT OR Apache-2.0".
                license =
                  assert workspace.license == "MIT OR Apache-2.0";
                  with pkgs.lib.licenses;
                  [
                    mit
                    asl20
                  ];
                mainProgram = "nixwire";
              };
            }
          );
        in
        {
          inherit nixwire;
          default = nixwire;
        }
      );

      # What ./test.sh runs before the conformance suite, each its own check.
      checks = forAllSystems (pkgs: {
        test = check pkgs "test" [ ] "cargo test --workspace --frozen";
        fmt = check pkgs "fmt" [ pkgs.rustfmt ] "cargo fmt --all -- --check";
        clippy =
          check pkgs "clippy" [ pkgs.clippy ]
            "cargo clippy --workspace --all-targets --frozen -- -D warnings";
        doc =
          check pkgs "doc" [ ]
            ''RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --frozen'';
      });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          nativeBuildInputs = [
            pkgs.rustc
            pkgs.cargo
            pkgs.rustfmt
            pkgs.clippy
            pkgs.rust-analyzer
            pkgs.pkg-config
            # The real Nix the live tests drive, the ssh client and
            # ssh-keygen of the ssh tests, and Python for the benchmark
            # script.
            pkgs.nix
            pkgs.openssh
            pkgs.python3
          ];
          buildInputs = [
            pkgs.openssl
            pkgs.zlib
          ];
          RUST_SRC_PATH = "${pkgs.rustPlatform.rustLibSrc}";
        };
      });
    };
}
