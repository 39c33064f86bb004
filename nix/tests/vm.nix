# NixOS VM test (needs KVM): three machines on two networks,
#   client (192.168.1.1) ── edge (192.168.1.2 | 192.168.2.2) ── home (192.168.2.3)
# The edge runs nixosModules.innisfree from an EdgeConfig value; the home side sets up WireGuard the way
# `innisfree up` does (its peer key read from the edge with innisfree-edge-status) and runs small services on
# its tunnel address. The client then reaches a TCP and a UDP service through the edge's public address.
# With nginx the services see the edge's tunnel address as the client, and a PROXY protocol port carries the real
# one; with nftables DNAT they see the client's own address.
{
  pkgs,
  self,
  forwarding,
}:
let
  inherit (pkgs) lib;
  isNginx = forwarding == "nginx";
  # Test-only keys (snake oil): the home host's WireGuard key pair.
  homePrivate = "wBnioCCU7p76f6zEs97Gv1tvPGeakCAA79zqOvgMC3I=";
  homePublic = "Vf7M7+QuA+eHetq/HCDdEFybdEpCPaElaNfpag771lc=";

  edgeConfig = {
    enable = true;
    name = "vmtest";
    inherit forwarding;
    ipv6 = false;
    ports = [
      {
        # The README's headline ports: NixOS' own nginx defaults must leave public 80 and 443 to the tunnel.
        protocol = "tcp";
        publicPort = 80;
        localPort = 9080;
        proxyProtocol = false;
      }
      {
        protocol = "udp";
        publicPort = 5353;
        localPort = 9053;
        proxyProtocol = false;
      }
    ]
    ++ lib.optional isNginx {
      protocol = "tcp";
      publicPort = 443;
      localPort = 9443;
      proxyProtocol = true;
    };
    wireguard = {
      interface = "ise-vmtest";
      listenPort = 51820;
      address = "10.50.0.1/30";
      mtu = 1420;
      peer = {
        publicKey = homePublic;
        address = "10.50.0.2";
      };
    };
    ssh = {
      port = 22;
      authorizedKeys = [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGAPLRiHD1P3ZHYJOmoeasVYrbWvGdFU14lI/0DWd9p2 innisfree-vmtest"
      ];
    };
  };
  configHash = builtins.hashString "sha256" (builtins.toJSON edgeConfig);

  # A service on the home side's tunnel address that answers with the address it sees the client at.
  socatService = description: listen: reply: {
    inherit description;
    wantedBy = [ "multi-user.target" ];
    after = [ "wireguard-isf-vmtest.service" ];
    requires = [ "wireguard-isf-vmtest.service" ];
    # A script, not ExecStart: systemd would expand $SOCAT_PEERADDR itself.
    script = "exec ${pkgs.socat}/bin/socat ${listen} SYSTEM:${lib.escapeShellArg reply}";
  };
in
pkgs.testers.runNixOSTest {
  name = "innisfree-edge-${forwarding}";

  nodes = {
    client = {
      virtualisation.vlans = [ 1 ];
      environment.systemPackages = [ pkgs.socat ];
    };

    edge = {
      imports = [ self.nixosModules.innisfree ];
      virtualisation.vlans = [
        1
        2
      ];
      services.innisfree = edgeConfig // {
        inherit configHash;
      };
    };

    home = {
      virtualisation.vlans = [ 2 ];
      environment.systemPackages = [ pkgs.wireguard-tools ];
      networking.wireguard.interfaces.isf-vmtest = {
        ips = [ "10.50.0.2/30" ];
        privateKeyFile = toString (pkgs.writeText "home-wireguard-key" homePrivate);
        mtu = 1420;
        # The edge's key exists only once the edge has generated it: the test script adds the peer.
        peers = [ ];
      };
      # Packets from the internet arrive over the tunnel (DNAT mode); let them in.
      networking.firewall.trustedInterfaces = [ "isf-vmtest" ];
      networking.firewall.checkReversePath = false;
      systemd.services.tcp-echo-peer = socatService "answers with the client address" "TCP-LISTEN:9080,bind=10.50.0.2,fork,reuseaddr" "echo $SOCAT_PEERADDR";
      systemd.services.udp-echo-peer = socatService "answers with the client address" "UDP-RECVFROM:9053,bind=10.50.0.2,fork" "echo $SOCAT_PEERADDR";
      systemd.services.tcp-proxy-header = socatService "answers with the PROXY protocol line" "TCP-LISTEN:9443,bind=10.50.0.2,fork,reuseaddr" "head -n 1";
    };
  };

  testScript = ''
    import json

    kernel_forwarding = ${if isNginx then "False" else "True"}
    # nginx connects from the edge's tunnel address; DNAT keeps the client's own address.
    seen_as = "10.50.0.1" if not kernel_forwarding else "192.168.1.1"

    start_all()
    edge.wait_for_unit("wireguard-ise-vmtest.service")
    edge.wait_for_unit("nftables.service" if kernel_forwarding else "nginx.service")
    edge.wait_for_open_port(22)

    with subtest("the edge reports its key, config hash and forwarder"):
        status = json.loads(edge.succeed("innisfree-edge-status"))
        assert status["name"] == "vmtest", status
        assert status["configHash"] == "${configHash}", status
        assert status["forwarder"] == {"kind": "${forwarding}", "active": True}, status
        assert status["wireguard"]["up"], status
        edge_key = status["wireguard"]["publicKey"]
        assert edge_key, status
        assert "${homePublic}" in [p["publicKey"] for p in status["wireguard"]["peers"]], status

    with subtest("the home side joins the tunnel as innisfree up would"):
        home.wait_for_unit("wireguard-isf-vmtest.service")
        allowed = "0.0.0.0/0" if kernel_forwarding else "10.50.0.1/32"
        home.succeed(
            f"wg set isf-vmtest peer {edge_key} endpoint 192.168.2.2:51820 persistent-keepalive 5 allowed-ips {allowed}"
        )
        if kernel_forwarding:
            # Replies from the tunnel address go back through the tunnel (the CLI's policy routing).
            home.succeed("ip route replace default dev isf-vmtest table 100")
            home.succeed("ip rule add from 10.50.0.2 table 100 priority 100")
        home.wait_until_succeeds("ping -c 1 -W 1 10.50.0.1")
        home.wait_for_open_port(9080, "10.50.0.2")

    with subtest("TCP reaches the home service through the edge"):
        reply = client.wait_until_succeeds("echo | socat -t 5 - TCP:192.168.1.2:80,connect-timeout=5").strip()
        assert reply == seen_as, f"expected the service to see {seen_as}, got {reply!r}"

    with subtest("UDP reaches the home service and the reply comes back"):
        reply = client.wait_until_succeeds("echo ping | socat -t 5 - UDP:192.168.1.2:5353").strip()
        assert reply == seen_as, f"expected the service to see {seen_as}, got {reply!r}"

    if not kernel_forwarding:
        with subtest("a PROXY protocol port tells the service the real client address"):
            reply = client.succeed("echo hello | socat -t 5 - TCP:192.168.1.2:443,connect-timeout=5").strip()
            assert reply.startswith("PROXY TCP4 192.168.1.1 192.168.1.2 "), f"got {reply!r}"

    with subtest("nothing else is reachable on the edge"):
        client.fail("socat -T 3 - TCP:192.168.1.2:9080,connect-timeout=3 </dev/null")
        client.fail("socat -T 3 - TCP:192.168.1.2:8081,connect-timeout=3 </dev/null")

    if not kernel_forwarding:
        with subtest("the edge status lists exactly the ports nginx bound"):
            listening = json.loads(edge.succeed("innisfree-edge-status"))["forwarder"]["listening"]
            assert sorted((l["protocol"], l["port"]) for l in listening) == [("tcp", 80), ("tcp", 443), ("udp", 5353)], listening

    with subtest("the edge saw a handshake from the home peer"):
        status = json.loads(edge.succeed("innisfree-edge-status"))
        peer = [p for p in status["wireguard"]["peers"] if p["publicKey"] == "${homePublic}"][0]
        assert peer["latestHandshake"] > 0 and peer["rxBytes"] > 0, peer
  '';
}
