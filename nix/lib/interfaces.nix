# The WireGuard interface names the CLI picks (src/addressing.ts): "isf-" on the home host, "ise-" on the edge,
# followed by the tunnel name when it has at most 10 characters, else its first five (trailing "-" dropped), "-" and
# four hex digits of sha256("<name>#0"). A second tunnel whose name collides gets another salt; that case is rare
# and is not predicted here.
let
  stripTrailingDashes =
    s:
    let
      m = builtins.match "(.*[^-])-*" s;
    in
    if m == null then "" else builtins.head m;
  shortId =
    name:
    if builtins.stringLength name <= 10 then
      name
    else
      "${stripTrailingDashes (builtins.substring 0 5 name)}-${builtins.substring 0 4 (builtins.hashString "sha256" "${name}#0")}";
in
{
  inherit shortId;
  home = name: "isf-${shortId name}";
  edge = name: "ise-${shortId name}";
}
