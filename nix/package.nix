# The innisfree CLI: TypeScript compiled with nixpkgs' typescript, run by nixpkgs' nodejs, with its npm runtime
# dependencies from a fixed-output derivation (npm-deps.nix). The wrapper puts the tools the CLI drives on PATH
# (wg, ip, nft, sysctl, ssh, nix, deploy, nixos-anywhere; the home module's services have no PATH of their own) and
# points INNISFREE_FLAKE at the flake it was built from, which the per-tunnel edge flakes take as their input.
{
  lib,
  stdenvNoCC,
  callPackage,
  makeWrapper,
  nodejs,
  typescript,
  wireguard-tools,
  wireguard-go,
  iproute2,
  nftables,
  procps,
  openssh,
  nix,
  deploy-rs,
  nixos-anywhere,
  innisfreeFlake ? null,
}:
let
  packageJson = lib.importJSON ../package.json;
  npmDeps = callPackage ./npm-deps.nix { inherit nodejs; };
  runtimeTools = [
    wireguard-tools
    wireguard-go
    iproute2
    # nft and sysctl for kernel forwarding at home.
    nftables
    procps
    openssh
    nix
    deploy-rs
    nixos-anywhere
  ];
in
stdenvNoCC.mkDerivation {
  pname = "innisfree";
  inherit (packageJson) version;

  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../package.json
      ../package-lock.json
      ../tsconfig.json
      ../src
      ../nix
      ../modules
    ];
  };

  nativeBuildInputs = [
    nodejs
    typescript
    makeWrapper
  ];

  buildPhase = ''
    runHook preBuild
    ln -s ${npmDeps}/node_modules node_modules
    # Type checking is the test suite's job (it has the @types packages, which are devDependencies and so not
    # in npmDeps); here TypeScript only emits JavaScript.
    echo '{ "extends": "./tsconfig.json", "compilerOptions": { "noCheck": true, "types": [] }, "include": ["src/**/*.ts"] }' \
      > tsconfig.build.json
    tsc -p tsconfig.build.json
    runHook postBuild
  '';

  installPhase = ''
    runHook preInstall
    app=$out/lib/innisfree
    mkdir -p "$app/dist" "$app/src" $out/bin
    cp package.json "$app/"
    cp -r dist/src "$app/dist/src"
    cp -r src/templates "$app/src/templates"
    cp -r nix modules "$app/"
    ln -s ${npmDeps}/node_modules "$app/node_modules"
    makeWrapper ${lib.getExe nodejs} $out/bin/innisfree \
      --add-flags "$app/${packageJson.bin.innisfree}" \
      --prefix PATH : ${lib.makeBinPath runtimeTools} \
      --set-default NIX_CONFIG "extra-experimental-features = nix-command flakes" \
      ${lib.optionalString (innisfreeFlake != null) "--set INNISFREE_FLAKE ${innisfreeFlake}"}
    runHook postInstall
  '';

  passthru = { inherit npmDeps; };

  meta = {
    description = packageJson.description;
    license = lib.licenses.agpl3Plus;
    mainProgram = "innisfree";
    platforms = lib.platforms.linux;
  };
}
