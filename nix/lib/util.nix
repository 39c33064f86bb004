# Small list and string helpers written with builtins only, so the renderers evaluate without nixpkgs.
# Linear or n·log n throughout: an edge may carry thousands of ports.
{
  # "10.50.0.1/30" -> "10.50.0.1"
  addressOf = cidr: builtins.head (builtins.split "/" cidr);

  # Ascending, without duplicates (numbers or strings).
  sortUnique =
    list:
    builtins.sort builtins.lessThan (
      builtins.attrValues (
        builtins.listToAttrs (
          map (x: {
            name = toString x;
            value = x;
          }) list
        )
      )
    );

  # The list paired with 1-based positions, for messages that point at entries.
  numbered = list: builtins.genList (i: builtins.elemAt list i // { position = i + 1; }) (builtins.length list);

  # Groups (lists of elements) that share a key with another element, in key order.
  collisions =
    keyOf: list:
    let
      groups = builtins.groupBy keyOf list;
    in
    builtins.filter (group: builtins.length group > 1) (map (key: groups.${key}) (builtins.attrNames groups));

  concatMapSep = sep: f: list: builtins.concatStringsSep sep (map f list);

  optional = cond: x: if cond then [ x ] else [ ];

  optionalString = cond: s: if cond then s else "";
}
