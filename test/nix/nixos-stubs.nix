# Minimal declarations of the NixOS options that modules/edge.nix and modules/home.nix set, with the types the real
# modules use (checked against nixos/modules/services/networking/{wireguard,nftables,firewall}.nix,
# services/web-servers/nginx/default.nix, services/networking/ssh/sshd.nix, services/misc/nix-gc.nix), plus a fake
# `pkgs`. Lets the module evaluation tests run with nothing but nixpkgs' lib.
{ lib }:
let
  inherit (lib) mkOption types;
  anything = mkOption {
    type = types.anything;
    default = null;
  };
  fakeDerivation = name: extra: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  } // extra;
in
{
  pkgs = {
    bash = fakeDerivation "bash" { };
    coreutils = fakeDerivation "coreutils" { };
    wireguard-tools = fakeDerivation "wireguard-tools" { };
    nftables = fakeDerivation "nftables" { };
    iproute2 = fakeDerivation "iproute2" { };
    procps = fakeDerivation "procps" { };
    gawk = fakeDerivation "gawk" { };
    openssh = fakeDerivation "openssh" { };
    nix = fakeDerivation "nix" { };
    deploy-rs = fakeDerivation "deploy-rs" { };
    systemd = fakeDerivation "systemd" { };
    writeShellApplication = args: fakeDerivation args.name { inherit (args) text runtimeInputs; };
    writeShellScript = name: text: fakeDerivation name { inherit text; };
    # Like the real one, the store path changes with the content (reload triggers compare it).
    writeText = name: text: fakeDerivation name { inherit text; } // {
      outPath = "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" text)}-${name}";
    };
    # The build script and passthru, kept for the tests to read; the store path changes with the script.
    runCommand = name: env: buildCommand: fakeDerivation name ({ inherit buildCommand; } // (env.passthru or { })) // {
      outPath = "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" buildCommand)}-${name}";
    };
  };

  module =
    { config, ... }:
    {
    options = {
      assertions = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      warnings = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };

      networking.wireguard = {
        enable = mkOption {
          type = types.bool;
          default = false;
        };
        useNetworkd = mkOption {
          type = types.bool;
          default = false;
        };
        interfaces = mkOption {
          default = { };
          type = types.attrsOf (
            types.submodule {
              options = {
                ips = mkOption {
                  type = types.listOf types.str;
                  default = [ ];
                };
                privateKey = mkOption {
                  type = types.nullOr types.str;
                  default = null;
                };
                privateKeyFile = mkOption {
                  type = types.nullOr types.str;
                  default = null;
                };
                generatePrivateKeyFile = mkOption {
                  type = types.bool;
                  default = false;
                };
                listenPort = mkOption {
                  type = types.nullOr types.int;
                  default = null;
                };
                mtu = mkOption {
                  type = types.nullOr types.int;
                  default = null;
                };
                peers = mkOption {
                  default = [ ];
                  type = types.listOf (
                    types.submodule {
                      options = {
                        publicKey = mkOption { type = types.singleLineStr; };
                        allowedIPs = mkOption { type = types.listOf types.str; };
                        endpoint = mkOption {
                          type = types.nullOr types.str;
                          default = null;
                        };
                        persistentKeepalive = mkOption {
                          type = types.nullOr types.int;
                          default = null;
                        };
                      };
                    }
                  );
                };
              };
            }
          );
        };
      };

      networking.nftables = {
        enable = mkOption {
          type = types.bool;
          default = false;
        };
        tables = mkOption {
          default = { };
          type = types.attrsOf (
            types.submodule (
              { name, ... }:
              {
                options = {
                  enable = mkOption {
                    type = types.bool;
                    default = true;
                  };
                  name = mkOption {
                    type = types.str;
                    default = name;
                  };
                  content = mkOption { type = types.lines; };
                  family = mkOption {
                    type = types.enum [
                      "ip"
                      "ip6"
                      "inet"
                      "arp"
                      "bridge"
                      "netdev"
                    ];
                  };
                };
              }
            )
          );
        };
      };

      networking.firewall =
        let
          portOptions = {
            allowedTCPPorts = mkOption {
              type = types.listOf types.port;
              default = [ ];
            };
            allowedUDPPorts = mkOption {
              type = types.listOf types.port;
              default = [ ];
            };
            allowedTCPPortRanges = mkOption {
              type = types.listOf (types.attrsOf types.port);
              default = [ ];
            };
            allowedUDPPortRanges = mkOption {
              type = types.listOf (types.attrsOf types.port);
              default = [ ];
            };
          };
        in
        portOptions
        // {
          enable = mkOption {
            type = types.bool;
            default = true;
          };
          checkReversePath = mkOption {
            type = types.either types.bool (
              types.enum [
                "strict"
                "loose"
              ]
            );
            default = true;
          };
          interfaces = mkOption {
            default = { };
            type = types.attrsOf (types.submodule { options = portOptions; });
          };
        };

      boot.kernel.sysctl = mkOption {
        type = types.attrsOf (
          types.nullOr (
            types.oneOf [
              types.bool
              types.str
              types.int
            ]
          )
        );
        default = { };
      };
      boot.kernelModules = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };

      services.openssh = {
        enable = mkOption {
          type = types.bool;
          default = false;
        };
        ports = mkOption {
          type = types.listOf types.port;
          default = [ 22 ];
        };
        openFirewall = mkOption {
          type = types.bool;
          default = true;
        };
        settings = mkOption {
          default = { };
          type = types.submodule {
            freeformType = types.attrsOf types.anything;
            options = {
              PasswordAuthentication = mkOption {
                type = types.nullOr types.bool;
                default = true;
              };
              KbdInteractiveAuthentication = mkOption {
                type = types.nullOr types.bool;
                default = true;
              };
              X11Forwarding = mkOption {
                type = types.nullOr types.bool;
                default = false;
              };
              PermitRootLogin = mkOption {
                type = types.nullOr (
                  types.enum [
                    "yes"
                    "without-password"
                    "prohibit-password"
                    "forced-commands-only"
                    "no"
                  ]
                );
                default = "prohibit-password";
              };
            };
          };
        };
      };

      services.nginx = {
        enable = mkOption {
          type = types.bool;
          default = false;
        };
        enableReload = mkOption {
          type = types.bool;
          default = false;
        };
        streamConfig = mkOption {
          type = types.lines;
          default = "";
        };
        eventsConfig = mkOption {
          type = types.lines;
          default = "";
        };
        appendConfig = mkOption {
          type = types.lines;
          default = "";
        };
        # The HTTP side, with the defaults nixos/modules/services/web-servers/nginx/default.nix has: one
        # `localhost` virtual host, listening (with no listen/listenAddresses of its own) on defaultHTTPListenPort
        # on every defaultListenAddresses entry. nginx.conf gets that `http { }` block whenever `config` and
        # `httpConfig` are both empty; eval-edge-module.nix derives the HTTP listeners from these options the
        # same way.
        config = mkOption {
          type = types.str;
          default = "";
        };
        httpConfig = mkOption {
          type = types.lines;
          default = "";
        };
        enableIPv6 = mkOption {
          type = types.bool;
          default = true;
        };
        defaultHTTPListenPort = mkOption {
          type = types.port;
          default = 80;
        };
        defaultListenAddresses = mkOption {
          type = types.listOf types.str;
          default = [ "0.0.0.0" ] ++ lib.optional config.services.nginx.enableIPv6 "[::0]";
        };
        virtualHosts = mkOption {
          default = {
            localhost = { };
          };
          type = types.attrsOf (
            types.submodule {
              options = {
                listen = mkOption {
                  default = [ ];
                  type = types.listOf (
                    types.submodule {
                      options = {
                        addr = mkOption { type = types.str; };
                        port = mkOption {
                          type = types.nullOr types.port;
                          default = null;
                        };
                      };
                    }
                  );
                };
              };
            }
          );
        };
      };

      users.users = mkOption {
        default = { };
        type = types.attrsOf (
          types.submodule {
            freeformType = types.attrsOf types.anything;
            options.openssh.authorizedKeys.keys = mkOption {
              type = types.listOf types.singleLineStr;
              default = [ ];
            };
          }
        );
      };
      users.groups = mkOption {
        default = { };
        type = types.attrsOf (types.attrsOf types.anything);
      };

      nix.gc = {
        automatic = mkOption {
          type = types.bool;
          default = false;
        };
        dates = mkOption {
          type = types.either types.singleLineStr (types.listOf types.str);
          default = "03:15";
        };
        options = mkOption {
          type = types.singleLineStr;
          default = "";
        };
      };

      environment.etc = mkOption {
        default = { };
        type = types.attrsOf (
          types.submodule {
            options = {
              text = mkOption {
                type = types.nullOr types.lines;
                default = null;
              };
              source = mkOption {
                type = types.nullOr types.path;
                default = null;
              };
              mode = mkOption {
                type = types.str;
                default = "symlink";
              };
            };
          }
        );
      };
      environment.systemPackages = mkOption {
        type = types.listOf types.package;
        default = [ ];
      };

      systemd.package = mkOption {
        type = types.package;
        default = fakeDerivation "systemd" { };
      };
      systemd.services = mkOption {
        default = { };
        type = types.attrsOf (
          types.submodule {
            options = {
              description = mkOption {
                type = types.str;
                default = "";
              };
              wantedBy = mkOption {
                type = types.listOf types.str;
                default = [ ];
              };
              wants = mkOption {
                type = types.listOf types.str;
                default = [ ];
              };
              after = mkOption {
                type = types.listOf types.str;
                default = [ ];
              };
              path = mkOption {
                type = types.listOf types.package;
                default = [ ];
              };
              environment = mkOption {
                type = types.attrsOf types.str;
                default = { };
              };
              serviceConfig = mkOption {
                type = types.attrsOf types.anything;
                default = { };
              };
              unitConfig = anything;
              # As nixos/lib/systemd-unit-options.nix declares them (types and defaults).
              restartTriggers = mkOption {
                type = types.listOf types.unspecified;
                default = [ ];
              };
              reloadTriggers = mkOption {
                type = types.listOf (types.oneOf [ types.bool types.int types.str types.path types.package ]);
                default = [ ];
              };
              restartIfChanged = mkOption {
                type = types.bool;
                default = true;
              };
              reloadIfChanged = mkOption {
                type = types.bool;
                default = false;
              };
              stopIfChanged = mkOption {
                type = types.bool;
                default = true;
              };
              startLimitIntervalSec = mkOption {
                type = types.nullOr types.int;
                default = null;
              };
            };
          }
        );
      };
    };
  };
}
