# Port mappings as the CLI takes them, PUBLIC[:LOCAL][/PROTO][@HOST] with ranges ("443/tcp", "80:8080", "27015-27030/udp"),
# parsed the way src/spec/ports.ts does, for the home module's firewall. The CLI stays the judge of validity: this
# only throws on text that is not a mapping at all.
{ util }:
let
  toInt = s: builtins.fromJSON s;
  # A trailing "@HOST" (the mapping's own destination) does not change the local ports.
  pattern = "([0-9]{1,5})(-([0-9]{1,5}))?(:([0-9]{1,5})(-([0-9]{1,5}))?)?(/([A-Za-z]+))?(@[^,@[:space:]]+)?";
  trim = s: builtins.head (builtins.match "[[:space:]]*([^[:space:]]*)[[:space:]]*" s);

  parse =
    raw:
    let
      token = trim raw;
      m = builtins.match pattern token;
      at = i: builtins.elemAt m i;
      publicStart = toInt (at 0);
      publicEnd = if at 2 == null then publicStart else toInt (at 2);
      localStart = if at 4 == null then publicStart else toInt (at 4);
      localEnd =
        if at 4 == null then
          publicEnd
        else if at 6 == null then
          localStart
        else
          toInt (at 6);
      protocol = if at 8 == null then "tcp" else lowerProtocol (at 8);
      lowerProtocol =
        p:
        let
          l = builtins.replaceStrings [ "T" "C" "P" "U" "D" ] [ "t" "c" "p" "u" "d" ] p;
        in
        if l == "tcp" || l == "udp" then l else throw "innisfree: port mapping \"${token}\" has unknown protocol \"${p}\"; use tcp or udp";
    in
    if m == null then
      throw "innisfree: \"${token}\" is not a port mapping; write PUBLIC[:LOCAL][/tcp|udp], e.g. 443/tcp, 80:8080/tcp, 27015-27030/udp"
    else
      {
        inherit
          protocol
          publicStart
          publicEnd
          localStart
          localEnd
          ;
      };

  # A list of tokens, each possibly comma-separated.
  parseList =
    values:
    map parse (
      builtins.filter (t: builtins.isString t && trim t != "") (
        builtins.concatLists (map (v: builtins.split "," v) values)
      )
    );
in
{
  inherit parse parseList;

  # The local (home-side) port ranges per protocol: where the home forwarder, or the service itself, listens.
  localRanges =
    values:
    let
      ranges = parseList values;
      # Sorted, each range once (two public ports may forward to one local port).
      of =
        protocol:
        builtins.attrValues (
          builtins.listToAttrs (
            map (r: {
              name = "${toString (100000 + r.localStart)}-${toString (100000 + r.localEnd)}";
              value = {
                from = r.localStart;
                to = r.localEnd;
              };
            }) (builtins.filter (r: r.protocol == protocol) ranges)
          )
        );
    in
    {
      tcp = of "tcp";
      udp = of "udp";
    };
}
