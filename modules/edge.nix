# nixosModules.innisfree: the edge of an innisfree tunnel. Its options have exactly the shape of the EdgeConfig JSON
# that `innisfree plan --json` prints (src/spec/edge-config.ts is the source of truth), so
#   services.innisfree = lib.importJSON ./edge.json;
# configures a whole edge: the WireGuard interface (its private key generated on the edge, never in the store),
# forwarding of the public ports to the home host by nginx stream or by nftables DNAT, a firewall that opens exactly
# SSH, WireGuard and the public ports, keys-only OpenSSH, garbage collection, and `innisfree-edge-status`.
# A few options outside the JSON (configHash, wireguard.privateKeyFile, nginx.*) have defaults.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkEnableOption mkIf mkMerge mkOption types literalExpression;
  cfg = config.services.innisfree;
  # What the local edge (src/edge/edge-settings.ts) shares with this module: sshd hardening, the status variables.
  edgeSettings = lib.importJSON ../nix/edge-settings.json;
  render = import ../nix/lib;

  # Value types: everything that reaches nginx or nft text is checked here first (as zod does on the CLI side).
  portNumber = types.ints.between 1 65535;
  octet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
  ipv4Pattern = "${octet}(\\.${octet}){3}";
  ipv4 = types.strMatching ipv4Pattern;
  ipv4Cidr = types.strMatching "${ipv4Pattern}/([0-9]|[12][0-9]|3[0-2])";
  ipv6 = types.strMatching "[0-9a-fA-F:]*:[0-9a-fA-F:]*";
  ipv6Cidr = types.strMatching "[0-9a-fA-F:]*:[0-9a-fA-F:]*/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8])";
  wireguardKey = types.strMatching "[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=";
  interfaceName = types.strMatching "[a-zA-Z0-9][a-zA-Z0-9_-]{0,14}";
  sshPublicKey = types.strMatching "(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\\.com) [A-Za-z0-9+/]+={0,3}( [^\n]*)?";

  portModule =
    { config, ... }:
    {
      options = {
        protocol = mkOption {
          type = types.enum [
            "tcp"
            "udp"
          ];
          default = "tcp";
          description = "Transport protocol of the public port.";
        };
        publicPort = mkOption {
          type = portNumber;
          example = 443;
          description = "Port opened on the edge's public address.";
        };
        localPort = mkOption {
          type = portNumber;
          default = config.publicPort;
          defaultText = literalExpression "publicPort";
          example = 8443;
          description = "Port on the home host's tunnel address that traffic is forwarded to.";
        };
        proxyProtocol = mkOption {
          type = types.bool;
          default = false;
          description = ''
            Send a PROXY protocol v1 header to the home side, so it learns the client's address.
            TCP with nginx forwarding only.
          '';
        };
      };
    };

  # The EdgeConfig value the renderers take (nix/lib), rebuilt from the merged options.
  edge = {
    inherit (cfg)
      enable
      name
      forwarding
      ipv6
      ;
    ports = map (p: { inherit (p) protocol publicPort localPort proxyProtocol; }) cfg.ports;
    wireguard = {
      inherit (cfg.wireguard)
        interface
        listenPort
        address
        address6
        mtu
        ;
      peer = { inherit (cfg.wireguard.peer) publicKey address address6; };
    };
    ssh = { inherit (cfg.ssh) port authorizedKeys; };
  };

  wg = cfg.wireguard;
  firewall = render.firewall edge;
  dnatIpv6 = cfg.ipv6 && wg.peer.address6 != null;

  nginxMain = render.nginxMain cfg.nginx.workerConnections;

  forwarderCheck =
    if cfg.forwarding == "nginx" then
      "systemctl is-active --quiet nginx.service"
    else
      "systemctl is-active --quiet nftables.service && nft list table inet innisfree";

  statusEnv = edgeSettings.statusEnvironment;
  statusCommand = pkgs.writeShellApplication {
    name = "innisfree-edge-status";
    runtimeInputs = [
      pkgs.bash
      pkgs.coreutils
      pkgs.wireguard-tools
      pkgs.nftables
      pkgs.iproute2 # ss: the ports nginx really has bound
      pkgs.gawk
      config.systemd.package
    ];
    text = ''
      export ${statusEnv.name}=${lib.escapeShellArg cfg.name}
      export ${statusEnv.interface}=${lib.escapeShellArg wg.interface}
      export ${statusEnv.forwarding}=${lib.escapeShellArg cfg.forwarding}
      export ${statusEnv.hashFile}=/etc/innisfree/config-hash
      export ${statusEnv.forwarderCheck}=${lib.escapeShellArg forwarderCheck}
    ''
    + lib.removePrefix "#!/usr/bin/env bash\n" (builtins.readFile ../nix/edge-status.sh);
  };
  forwarderUnit = if cfg.forwarding == "nginx" then "nginx.service" else "nftables.service";
  wireguardUnit = "wireguard-${wg.interface}.service";

  # What `innisfree up` runs over SSH when its watch finds the forwarder, a listener or WireGuard broken: both units
  # restarted with the configuration the system already has (no rebuild, no new generation).
  repairCommand = pkgs.writeShellApplication {
    name = "innisfree-edge-repair";
    runtimeInputs = [ config.systemd.package ];
    text = ''
      systemctl restart ${forwarderUnit}
      systemctl restart ${wireguardUnit}
      # The scripted backend gives each peer a unit of its own, which sets the peer on the new interface.
      systemctl restart ${lib.escapeShellArg "wireguard-${wg.interface}-peer-*"} || true
      echo "restarted ${forwarderUnit} and ${wireguardUnit}"
    '';
  };
in
{
  options.services.innisfree = {
    enable = mkEnableOption "the innisfree edge: public ports forwarded over WireGuard to a home host";

    name = mkOption {
      type = types.strMatching "[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?";
      example = "web";
      description = "Name of the tunnel this edge serves (a short DNS label).";
    };

    ports = mkOption {
      type = types.listOf (types.submodule portModule);
      default = [ ];
      example = literalExpression ''
        [
          { protocol = "tcp"; publicPort = 443; localPort = 443; proxyProtocol = false; }
          { protocol = "udp"; publicPort = 19132; localPort = 19132; proxyProtocol = false; }
        ]
      '';
      description = ''
        Public ports forwarded over the tunnel, one entry per port (the CLI expands ranges). A public port may
        appear once per protocol and must not be the edge's SSH (TCP) or WireGuard (UDP) port.
      '';
    };

    forwarding = mkOption {
      type = types.enum [
        "nginx"
        "nftables"
      ];
      default = "nginx";
      description = ''
        How public ports reach the home host. `nginx`: a stream proxy (TCP and UDP, optional PROXY protocol;
        the home side sees the edge's tunnel address as the client). `nftables`: kernel DNAT without masquerade,
        no userspace copy; the home side sees the real client address and must route its replies back through the
        tunnel (the CLI sets up that policy routing).
      '';
    };

    ipv6 = mkOption {
      type = types.bool;
      default = false;
      description = "Also accept connections on the edge's public IPv6 address.";
    };

    wireguard = {
      interface = mkOption {
        type = interfaceName;
        default = "wg-innisfree";
        example = "ise-web";
        description = "WireGuard interface name on the edge (at most 15 characters).";
      };
      listenPort = mkOption {
        type = portNumber;
        default = 51820;
        description = "UDP port the edge's WireGuard interface listens on.";
      };
      address = mkOption {
        type = ipv4Cidr;
        example = "10.50.0.1/30";
        description = "The edge's tunnel IPv4 address with prefix length.";
      };
      address6 = mkOption {
        type = types.nullOr ipv6Cidr;
        default = null;
        example = "fd49:6e6e:6973:1::1/64";
        description = "The edge's tunnel IPv6 address (ULA) with prefix length, when the tunnel carries IPv6.";
      };
      mtu = mkOption {
        type = types.ints.between 1280 9000;
        default = 1420;
        description = "MTU of the WireGuard interface.";
      };
      peer = {
        publicKey = mkOption {
          type = wireguardKey;
          example = "P6RTFeT7ETiDVjl2rRuaLNoUmVvdiWx6s/WuFjuKcVE=";
          description = "The home host's WireGuard public key.";
        };
        address = mkOption {
          type = ipv4;
          example = "10.50.0.2";
          description = "The home host's tunnel IPv4 address: where public ports are forwarded to.";
        };
        address6 = mkOption {
          type = types.nullOr ipv6;
          default = null;
          example = "fd49:6e6e:6973:1::2";
          description = "The home host's tunnel IPv6 address, when the tunnel carries IPv6.";
        };
      };
      privateKeyFile = mkOption {
        type = types.str;
        default = "/var/lib/innisfree/wireguard/${cfg.wireguard.interface}.key";
        defaultText = literalExpression ''"/var/lib/innisfree/wireguard/''${config.services.innisfree.wireguard.interface}.key"'';
        description = ''
          Where the edge keeps its WireGuard private key. It is generated on the edge on first start and never
          enters the Nix store; the CLI reads the public key through `innisfree-edge-status`. Not part of the JSON.
        '';
      };
    };

    ssh = {
      port = mkOption {
        type = portNumber;
        default = 22;
        description = "TCP port of the edge's OpenSSH server.";
      };
      authorizedKeys = mkOption {
        type = types.listOf sshPublicKey;
        default = [ ];
        example = [ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGAPLRiHD1P3ZHYJOmoeasVYrbWvGdFU14lI/0DWd9p2 innisfree-web" ];
        description = "Public keys allowed to log in as root (keys only; passwords are off).";
      };
    };

    configHash = mkOption {
      type = types.nullOr (types.strMatching "[0-9a-f]{64}");
      default = null;
      example = literalExpression ''builtins.hashFile "sha256" ./edge.json'';
      description = ''
        sha256 (hex) of the edge.json this configuration was built from, reported by `innisfree-edge-status`
        so the CLI can skip a deploy that would change nothing. Set by the per-tunnel flake; not part of the JSON.
      '';
    };

    nginx.workerConnections = mkOption {
      type = types.ints.between 1024 1048576;
      default = render.defaultWorkerConnections;
      description = ''
        Connections each nginx worker can proxy with `forwarding = "nginx"` (a TCP connection counts twice).
        Room for the most listening sockets the CLI accepts (4,096 ports on IPv4 and IPv6) is added on top for
        `worker_connections`, and the descriptor limits are sized from the sum: neither depends on the ports, so
        a port change reloads nginx instead of restarting it. Not part of the JSON.
      '';
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions =
        map (message: {
          assertion = false;
          inherit message;
        }) (render.validate edge)
        ++ [
          {
            assertion = cfg.ssh.authorizedKeys != [ ];
            message = ''
              services.innisfree.ssh.authorizedKeys is empty: with passwords off, nobody could log in to the edge,
              and deploys need root over SSH. Add the tunnel's public key (innisfree plan puts it there).'';
          }
        ];

      networking.wireguard.enable = true;
      # The scripted backend: the networkd one refuses generatePrivateKeyFile.
      networking.wireguard.useNetworkd = false;
      networking.wireguard.interfaces.${wg.interface} = {
        ips = [ wg.address ] ++ lib.optional (wg.address6 != null) wg.address6;
        inherit (wg) listenPort mtu privateKeyFile;
        generatePrivateKeyFile = true;
        peers = [
          {
            inherit (wg.peer) publicKey;
            allowedIPs = [ "${wg.peer.address}/32" ] ++ lib.optional (wg.peer.address6 != null) "${wg.peer.address6}/128";
          }
        ];
      };

      # The nftables backend of the NixOS firewall; in nftables mode our DNAT table sits next to it.
      networking.nftables.enable = true;
      networking.firewall = {
        enable = true;
        allowedTCPPorts = firewall.tcp;
        allowedUDPPorts = firewall.udp;
      };

      services.openssh = {
        enable = true;
        ports = [ cfg.ssh.port ];
        openFirewall = false; # the port is in networking.firewall.allowedTCPPorts above
        settings = edgeSettings.sshdHardening;
      };
      users.users.root.openssh.authorizedKeys.keys = cfg.ssh.authorizedKeys;

      # Every deploy adds a generation; keep the disk from filling up. The running and the previous generation
      # (the one a rollback returns to) are never collected.
      nix.gc = {
        automatic = lib.mkDefault true;
        dates = lib.mkDefault "weekly";
        options = lib.mkDefault "--delete-older-than 14d";
      };

      environment.etc."innisfree/config-hash" = mkIf (cfg.configHash != null) {
        text = "${cfg.configHash}\n";
        mode = "0444";
      };
      environment.systemPackages = [
        statusCommand
        repairCommand
        pkgs.wireguard-tools
      ];
    }

    (mkIf (cfg.forwarding == "nginx") {
      services.nginx = {
        enable = true;
        # A changed config reloads nginx: connections on ports that did not change keep going.
        enableReload = true;
        streamConfig = render.nginxStream edge;
        inherit (nginxMain) eventsConfig appendConfig;
        # NixOS' default is one `localhost` virtual host listening on defaultHTTPListenPort (80) on every address
        # (nixos/modules/services/web-servers/nginx/default.nix): it would take public 80/tcp from the stream
        # listener and nginx would not start. Any definition replaces the default; the edge serves no HTTP itself.
        virtualHosts = { };
      };
      # The same for every port set (nix/lib/nginx-limits.nix): a changed unit would restart nginx, not reload it.
      systemd.services.nginx.serviceConfig.LimitNOFILE = nginxMain.limits.nofile;
    })

    (mkIf (cfg.forwarding == "nftables") {
      networking.nftables.tables.innisfree = render.nftables edge;
      boot.kernel.sysctl = {
        "net.ipv4.conf.all.forwarding" = true;
      }
      // lib.optionalAttrs dnatIpv6 { "net.ipv6.conf.all.forwarding" = true; };
    })
  ]);
}
