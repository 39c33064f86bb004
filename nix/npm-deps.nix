# innisfree's npm runtime dependencies as a fixed-output derivation: `npm ci --omit=dev --ignore-scripts` with
# nixpkgs' own npm, by the same recipe nix/npm-deps-hash.sh uses to compute the committed hash (nix/npm-deps.hash).
# package-lock.json names no registry (the project keeps it registry-agnostic), which nixpkgs' npm fetchers
# cannot work with; a fixed-output derivation may use the network and needs no URLs in the repository.
# After changing dependencies: nix/npm-deps-hash.sh --write.
{
  lib,
  stdenvNoCC,
  nodejs,
  cacert,
}:
stdenvNoCC.mkDerivation {
  # The name is part of the output path: keep it stable, the hash does the versioning.
  name = "innisfree-npm-deps";

  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../package.json
      ../package-lock.json
    ];
  };

  nativeBuildInputs = [ nodejs ];

  dontConfigure = true;
  buildPhase = ''
    runHook preBuild
    export HOME="$TMPDIR"
    export SSL_CERT_FILE=${cacert}/etc/ssl/certs/ca-bundle.crt
    export NODE_EXTRA_CA_CERTS="$SSL_CERT_FILE"
    bash ${./npm-deps-install.sh} . "$out"
    runHook postBuild
  '';
  dontInstall = true;
  # No shebang patching or stripping: the output must be exactly what the hash script produced, and a
  # fixed-output path may not refer to other store paths.
  dontFixup = true;

  impureEnvVars = lib.fetchers.proxyImpureEnvVars ++ [
    "NPM_CONFIG_REGISTRY"
    "npm_config_registry"
  ];
  outputHashMode = "recursive";
  outputHashAlgo = "sha256";
  outputHash = lib.fileContents ./npm-deps.hash;
}
