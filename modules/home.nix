# nixosModules.home: tunnels run by the home host. Each services.innisfree.tunnels.<name> is written as a tunnel
# file (JSON, the CLI's own --file format), checked with `innisfree check --file` when the system is built (a bad
# tunnel fails the build, not the boot), and run by a systemd service `innisfree-<name>` as
# `innisfree up --file /etc/innisfree/tunnels/<name>.json`: it creates or re-attaches to the tunnel's DigitalOcean
# edge (keep: a restart finds the same droplet and IP again), deploys the edge config, brings WireGuard up on the
# interface the file names and forwards the public ports to `destination`, until stopped (SIGTERM: orderly teardown
# of the home side, the edge stays). The API token reaches it as a systemd credential, never through the Nix store
# or the tunnel file. `innisfree down <name>` (as the service user, INNISFREE_STATE_DIR=/var/lib/innisfree) destroys
# an edge for good.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption mkIf types literalExpression;
  cfg = config.services.innisfree;
  render = import ../nix/lib;
  stateDir = "/var/lib/innisfree";
  cacheDir = "/var/cache/innisfree";

  portNumber = types.ints.between 1 65535;
  # "@HOST": the mapping's own destination (an address, [IPv6] or a host name); the CLI checks it.
  portToken = "[0-9]{1,5}(-[0-9]{1,5})?(:[0-9]{1,5}(-[0-9]{1,5})?)?(/[A-Za-z]+)?(@[^,@[:space:]]+)?";
  portString = types.strMatching "[[:space:]]*${portToken}([[:space:]]*,[[:space:]]*${portToken})*[[:space:]]*";
  portRange = types.either portNumber (types.strMatching "[0-9]{1,5}-[0-9]{1,5}");

  portEntry = types.submodule {
    options = {
      public = mkOption {
        type = portRange;
        example = 443;
        description = "Public port on the edge, or a range such as \"27015-27030\".";
      };
      local = mkOption {
        type = types.nullOr portRange;
        default = null;
        example = 8443;
        description = "Port (or range of the same length) the home side forwards to; null: the public port.";
      };
      protocol = mkOption {
        type = types.enum [
          "tcp"
          "udp"
        ];
        default = "tcp";
        description = "Transport protocol.";
      };
      proxyProtocol = mkOption {
        type = types.bool;
        default = false;
        description = "Send a PROXY protocol header to the service (TCP, nginx forwarding; version: proxyProtocolVersion).";
      };
      destination = mkOption {
        type = types.nullOr (types.strMatching "[^,@[:space:]]+");
        default = null;
        example = "192.168.1.20";
        description = ''
          This mapping's own destination host (an IPv4 or IPv6 address or a host name), so one edge serves
          services on several hosts; null: the tunnel's `destination`. Two mappings that arrive at the same local
          port must name the same destination.
        '';
      };
    };
  };

  # A structured entry as the CLI's PUBLIC[:LOCAL][/PROTO][@HOST] text.
  tokenOf =
    entry:
    if builtins.isString entry then
      entry
    else
      "${toString entry.public}${lib.optionalString (entry.local != null) ":${toString entry.local}"}/${entry.protocol}${lib.optionalString (entry.destination != null) "@${entry.destination}"}";

  # The interface a tunnel gets unless it names one: "isf-" and the tunnel name when it has at most 10 characters,
  # else its first five (trailing "-" dropped), "-" and four hex digits of sha256("<name>#0"). That is the name the
  # CLI picks on its own first (src/addressing.ts shortIdOf), so hosts that ran before the module told the CLI keep
  # their interface. It is not a prediction: the module writes it into the tunnel file and the CLI uses exactly it.
  defaultInterfaceOf =
    name:
    let
      head = builtins.match "(.*[^-])-*" (builtins.substring 0 5 name);
      hash = builtins.substring 0 4 (builtins.hashString "sha256" "${name}#0");
    in
    if builtins.stringLength name <= 10 then
      "isf-${name}"
    else
      "isf-${if head == null then "" else builtins.head head}-${hash}";

  tunnelModule =
    { name, config, ... }:
    {
      options = {
        enable = mkOption {
          type = types.bool;
          default = true;
          description = "Whether to run this tunnel.";
        };
        name = mkOption {
          type = types.strMatching "[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?";
          default = name;
          defaultText = literalExpression "<name>";
          description = "Tunnel name (a short DNS label); the attribute name by default.";
        };
        interface = mkOption {
          # The CLI checks it again (src/spec/primitives.ts HomeInterfaceName), at build time through `check`.
          type = types.strMatching "isf-[a-zA-Z0-9_-]{1,11}";
          default = defaultInterfaceOf config.name;
          defaultText = lib.literalMD ''
            `"isf-<name>"`; for a name over 10 characters, its first five, `-` and 4 hex digits
          '';
          example = "isf-house";
          description = ''
            The home WireGuard interface of this tunnel: "isf-" and 1-11 letters, digits, "_" or "-" (15 characters
            at most, the Linux limit; the prefix keeps `innisfree up`, which removes a stale link of that name, off
            the host's other interfaces). The module writes it into the tunnel file, so the CLI uses exactly this
            name and refuses it when another tunnel on this host has it; `openFirewall` opens this interface. The
            default is the name the CLI would pick on its own, so existing hosts keep theirs.
          '';
        };
        ports = mkOption {
          type = types.listOf (types.either portString portEntry);
          example = literalExpression ''[ "443/tcp" "80:8080/tcp" "2222:22/tcp@192.168.1.30" { public = "27015-27030"; protocol = "udp"; destination = "192.168.1.40"; } ]'';
          description = ''
            Public ports: strings in the CLI's PUBLIC[:LOCAL][/PROTO][@HOST] syntax ("443/tcp", "80:8080",
            "27015-27030/udp", "443/tcp@192.168.1.20"), or entries { public; local; protocol; proxyProtocol;
            destination; }. A mapping with "@HOST" (or `destination`) goes to that host, the others to `destination`.
          '';
        };
        proxyProtocol = mkOption {
          type = types.listOf (types.either portNumber types.str);
          default = [ ];
          example = [ 443 ];
          description = ''Public TCP ports that get a PROXY protocol header, or [ "all" ] (besides entries' own flag).'';
        };
        proxyProtocolVersion = mkOption {
          type = types.nullOr (
            types.enum [
              1
              2
            ]
          );
          default = null;
          example = 2;
          description = ''
            PROXY protocol version the service gets. The edge's nginx sends v1 only; with 2 the home forwarder
            passes each header on as v2 (the tunnel then uses the forwarder, not kernel forwarding, and needs a
            `destination` other than "none"). null: the CLI's default, 1.
          '';
        };
        destination = mkOption {
          type = types.str;
          default = "127.0.0.1";
          example = "192.168.1.20";
          description = ''
            Where the home side forwards the ports to: an address or host name, or "none" when the service
            listens on the tunnel address itself.
          '';
        };
        region = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "fra1";
          description = "DigitalOcean region of the edge; null: the CLI's default (nyc3).";
        };
        size = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "s-1vcpu-1gb";
          description = "Droplet size; null: the CLI's default for the bootstrap method.";
        };
        bootstrap = mkOption {
          type = types.nullOr (
            types.enum [
              "image"
              "nixos-anywhere"
            ]
          );
          default = null;
          description = ''
            How NixOS gets onto a new edge: "image" (innisfree's custom image, see `image`) or
            "nixos-anywhere" (from stock Debian); null: image when `image` is set.
          '';
        };
        image = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "innisfree-edge";
          description = "The custom image (id or name) built from packages.x86_64-linux.edge-image.";
        };
        forwarding = mkOption {
          type = types.enum [
            "nginx"
            "nftables"
          ];
          default = "nginx";
          description = ''
            nginx (stream proxy, PROXY protocol possible) or nftables (kernel DNAT: the service sees client
            addresses; this host then routes the tunnel address's replies back through the tunnel).
          '';
        };
        homeForwarding = mkOption {
          type = types.nullOr (
            types.enum [
              "kernel"
              "proxy"
            ]
          );
          default = null;
          description = ''
            How this host reaches `destination`: "kernel" (nftables DNAT; with forwarding = "nftables" the
            service sees the client's own address) or "proxy" (the userspace forwarder; the service sees this
            host). null: the CLI's choice, kernel for a destination on this host, the forwarder otherwise.
          '';
        };
        masquerade = mkOption {
          type = types.bool;
          default = false;
          description = ''
            Kernel forwarding to another host: SNAT to this host's address there, so that host needs no route
            back through this one (it then sees this host, not the client).
          '';
        };
        reservedIp = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "203.0.113.10";
          description = "A DigitalOcean reserved IP to assign to the edge (it survives `innisfree down`).";
        };
        reservedIpv6 = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "new";
          description = ''
            A DigitalOcean reserved IPv6 to assign to the edge, or "new" to reserve one in its region (it survives
            `innisfree down`). Implies IPv6 on the edge; needs bootstrap nixos-anywhere (custom images get no IPv6).
          '';
        };
        ipv6 = mkOption {
          type = types.bool;
          default = false;
          description = "Also serve the ports on the edge's IPv6 address.";
        };
        dns = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "home.example.org";
          description = "A host name whose A/AAAA records point at the edge (its domain must be in the account).";
        };
        wireguardPort = mkOption {
          type = types.nullOr portNumber;
          default = null;
          description = "WireGuard port of the edge; null: 51820.";
        };
        keepalive = mkOption {
          type = types.nullOr (types.ints.between 0 65535);
          default = null;
          description = "WireGuard persistent keepalive in seconds; null: 25.";
        };
        mtu = mkOption {
          type = types.nullOr (types.ints.between 1280 9000);
          default = null;
          description = "WireGuard MTU; null: 1420.";
        };
        tokenFile = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "/run/secrets/digitalocean-token";
          description = ''
            File holding the DigitalOcean API token, readable by root and outside the Nix store (sops-nix,
            agenix, …). systemd hands it to the service as a credential; it is never copied into the store.
          '';
        };
        openFirewall = mkOption {
          type = types.bool;
          default = true;
          description = ''
            Open the tunnel's local ports on its WireGuard interface (`interface`), where the forwarder (or, with
            destination "none", the service) receives the traffic.
          '';
        };
        extraArgs = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "--verbose" ];
          description = ''
            More arguments for `innisfree up`, after `--file` (a flag beats the tunnel file's field, and it is not
            part of the build-time check).
          '';
        };
      };
    };

  enabledTunnels = lib.filterAttrs (_: t: t.enable) cfg.tunnels;
  # interface -> the attribute names of the enabled tunnels using it.
  interfaceUsers = lib.mapAttrs (_: map (u: u.attr)) (
    lib.groupBy (u: u.interface) (lib.mapAttrsToList (attr: t: { inherit attr; inherit (t) interface; }) enabledTunnels)
  );

  # The tunnel as the CLI's tunnel file: every setting, none secret (the token reaches the service as a credential).
  specOf =
    t:
    let
      entries = builtins.filter (e: !builtins.isString e) t.ports;
      proxyPorts = map toString t.proxyProtocol ++ map (e: toString e.public) (builtins.filter (e: e.proxyProtocol) entries);
      optional = lib.filterAttrs (_: v: v != null) {
        inherit (t)
          homeForwarding
          proxyProtocolVersion
          region
          size
          bootstrap
          image
          reservedIp
          reservedIpv6
          dns
          wireguardPort
          keepalive
          mtu
          ;
      };
    in
    {
      inherit (t) name destination forwarding;
      provider = "digitalocean";
      # A restart finds the same droplet and IP again.
      keep = true;
      ports = map tokenOf t.ports;
      homeInterface = t.interface;
    }
    // optional
    // lib.optionalAttrs (proxyPorts != [ ]) { proxyProtocol = proxyPorts; }
    // lib.optionalAttrs t.masquerade { masquerade = true; }
    # Only when on: a reserved IPv6 implies IPv6, and an explicit false beside it would be refused.
    // lib.optionalAttrs t.ipv6 { ipv6 = true; };

  # The tunnel file, checked the sops-nix way: the derivation runs `innisfree check --file` on it and is the file
  # itself, so the system (its /etc entry) cannot be built from a tunnel the CLI would refuse. No network, no
  # state, no token: check reads the spec only.
  tunnelFileOf =
    t:
    let
      unchecked = pkgs.writeText "innisfree-${t.name}-unchecked.json" (builtins.toJSON (specOf t));
    in
    pkgs.runCommand "innisfree-${t.name}.json"
      {
        preferLocalBuild = true;
        allowSubstitutes = false;
        passthru = { inherit unchecked; };
      }
      ''
        # Named like /etc/innisfree/tunnels/<name>.json, so a refusal names the tunnel.
        cp ${unchecked} ${t.name}.json
        ${lib.getExe cfg.package} check --file ${t.name}.json
        cp ${t.name}.json $out
      '';
  tunnelFilePath = t: "/etc/innisfree/tunnels/${t.name}.json";

  # What needs a new edge or link (RestartTriggers): a change there restarts the unit; any other change to the
  # tunnel file (ports, destinations, PROXY protocol, masquerade) only reloads it (reloadTriggers), and a reload
  # keeps the ports that did not change serving.
  restartFieldsOf =
    t:
    builtins.toJSON (
      builtins.removeAttrs (specOf t) [
        "ports"
        "destination"
        "proxyProtocol"
        "proxyProtocolVersion"
        "masquerade"
      ]
    );

  # The token's path is only known at run time ($CREDENTIALS_DIRECTORY), so a tiny script execs the CLI; exec keeps
  # the CLI the main process, which receives SIGTERM itself. Everything else is in the tunnel file; its path stays
  # the same, so a new file does not change this script.
  launcherOf =
    t:
    pkgs.writeShellScript "innisfree-${t.name}" ''
      exec ${lib.getExe cfg.package} ${
        lib.escapeShellArgs (
          [
            "up"
            "--file"
            (tunnelFilePath t)
          ]
          ++ t.extraArgs
        )
      }${lib.optionalString (t.tokenFile != null) " --token-file \"$CREDENTIALS_DIRECTORY/token\""}
    '';

  serviceOf = t: {
    description = "innisfree tunnel ${t.name}";
    wantedBy = [ "multi-user.target" ];
    wants = [ "network-online.target" ];
    after = [ "network-online.target" ];
    # No `path`: the package's wrapper puts the tools the CLI runs (wg, ip, nft, sysctl, ssh, nix, deploy) on PATH.
    environment = {
      INNISFREE_STATE_DIR = stateDir;
      HOME = cacheDir;
      XDG_CACHE_HOME = cacheDir;
    };
    # A new tunnel file reloads the running up; a change to what needs a new edge or link restarts it.
    reloadTriggers = [ (tunnelFileOf t) ];
    restartTriggers = [ (restartFieldsOf t) ];
    serviceConfig = {
      ExecStart = launcherOf t;
      # Waits for the outcome: a refused or rolled-back reload fails the reload job, the old config keeps serving.
      ExecReload = "${lib.getExe cfg.package} reload ${t.name}";
      User = "innisfree";
      Group = "innisfree";
      StateDirectory = "innisfree";
      StateDirectoryMode = "0700";
      CacheDirectory = "innisfree";
      CacheDirectoryMode = "0700";
      LoadCredential = lib.optional (t.tokenFile != null) "token:${t.tokenFile}";
      # WireGuard link, addresses, policy routing, the kernel forwarding table and its sysctls; forwarders on
      # low ports.
      AmbientCapabilities = [
        "CAP_NET_ADMIN"
        "CAP_NET_BIND_SERVICE"
      ];
      CapabilityBoundingSet = [
        "CAP_NET_ADMIN"
        "CAP_NET_BIND_SERVICE"
      ];
      NoNewPrivileges = true;
      ProtectSystem = "full";
      ProtectHome = true;
      PrivateTmp = true;
      RestrictAddressFamilies = [
        "AF_UNIX"
        "AF_INET"
        "AF_INET6"
        "AF_NETLINK"
      ];
      # The CLI tears the home side down on SIGTERM and exits 0; only it gets the signal, its children
      # (ssh, deploy, wireguard-go) are stopped by it, or killed after the timeout.
      KillSignal = "SIGTERM";
      KillMode = "mixed";
      TimeoutStopSec = "2min";
      Restart = "on-failure";
      RestartSec = "30s";
      # Exit code 2 is a usage error: restarting cannot fix the configuration.
      RestartPreventExitStatus = "2";
    };
    startLimitIntervalSec = 0;
  };

  firewallOf =
    t:
    let
      ranges = render.ports.localRanges (map tokenOf t.ports);
    in
    lib.nameValuePair t.interface {
      allowedTCPPortRanges = ranges.tcp;
      allowedUDPPortRanges = ranges.udp;
    };
in
{
  options.services.innisfree = {
    package = mkOption {
      type = types.package;
      defaultText = literalExpression "innisfree.packages.\${system}.innisfree";
      description = "The innisfree package the tunnel services run (the flake's nixosModules.home sets it).";
    };

    tunnels = mkOption {
      type = types.attrsOf (types.submodule tunnelModule);
      default = { };
      example = literalExpression ''
        {
          web = {
            ports = [ "443/tcp" "80:8080/tcp" ];
            destination = "192.168.1.20";
            region = "fra1";
            image = "innisfree-edge";
            tokenFile = "/run/secrets/digitalocean-token";
          };
        }
      '';
      description = "Tunnels this host runs, one systemd service `innisfree-<name>` each.";
    };
  };

  config = mkIf (enabledTunnels != { }) {
    assertions = lib.concatLists (
      lib.mapAttrsToList (attr: t: [
        {
          assertion = t.tokenFile != null;
          message = ''
            services.innisfree.tunnels.${attr}.tokenFile is not set: the tunnel's DigitalOcean edge needs an API
            token. Point tokenFile at a root-readable file outside the Nix store, e.g. /run/secrets/digitalocean-token.'';
        }
        {
          assertion = t.tokenFile == null || !lib.hasPrefix builtins.storeDir t.tokenFile;
          message = ''
            services.innisfree.tunnels.${attr}.tokenFile is in the Nix store (${toString t.tokenFile}), which every
            user can read. Keep the token in a root-only file outside the store (sops-nix, agenix, or by hand).'';
        }
        {
          assertion = builtins.length (interfaceUsers.${t.interface} or [ ]) <= 1;
          message =
            "services.innisfree.tunnels.${attr}.interface: ${t.interface} is also the interface of "
            + "${lib.concatStringsSep ", " (lib.remove attr (interfaceUsers.${t.interface} or [ ]))} on this host. "
            + "Give each tunnel its own: set services.innisfree.tunnels.${attr}.interface = \"isf-…\";";
        }
        {
          assertion = t.ports != [ ];
          message = ''
            services.innisfree.tunnels.${attr}.ports is empty: a tunnel forwards at least one port.
            Add one, e.g. ports = [ "443/tcp" ];'';
        }
      ]) enabledTunnels
    );

    users.users.innisfree = {
      isSystemUser = true;
      group = "innisfree";
      home = stateDir;
      description = "innisfree tunnels";
    };
    users.groups.innisfree = { };

    boot.kernelModules = [ "wireguard" ];

    systemd.services = lib.mapAttrs' (_: t: lib.nameValuePair "innisfree-${t.name}" (serviceOf t)) enabledTunnels;
    environment.etc = lib.mapAttrs' (
      _: t: lib.nameValuePair "innisfree/tunnels/${t.name}.json" { source = tunnelFileOf t; }
    ) enabledTunnels;

    networking.firewall = {
      interfaces = lib.listToAttrs (map firewallOf (builtins.filter (t: t.openFirewall) (lib.attrValues enabledTunnels)));
      # With kernel forwarding, packets from the internet arrive over the tunnel; strict reverse-path filtering
      # would drop them because their source is routed elsewhere.
      checkReversePath = mkIf (lib.any (t: t.forwarding == "nftables") (lib.attrValues enabledTunnels)) (lib.mkDefault "loose");
    };
  };
}
