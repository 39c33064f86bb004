// Spelling conversions between the two ways a setting is named: a flag ("reserved-ip") and a field ("reservedIp").

/** "reserved-ip" → "reservedIp", "ipv6-pool" → "ipv6Pool". */
export function camelCase(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}
