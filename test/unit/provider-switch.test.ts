// One switch per provider: providerKit (src/providers/index.ts). Outside src/providers/ code asks a provider's
// traits (spec/tunnel.ts) or its kit, and never compares the provider's name.
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { providerKit } from '../../src/providers/index.js';
import { PROVIDERS, PROVIDER_TRAITS } from '../../src/spec/tunnel.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Lines that decide something by a provider's name. */
const SWITCHES: RegExp[] = [
  // spec.provider === 'local', providerName !== 'digitalocean' (typeof x.provider === 'string' is no switch)
  /\bprovider(Name)?\s*(===|!==)\s*(?=\S)(?!'string')/,
  /(===|!==)\s*[\w.?]*\bprovider(Name)?\b/,
  /switch\s*\([^)]*\bprovider/,
  new RegExp(`case '(${PROVIDERS.join('|')})'`),
  // The name itself: only the enum, the default and the traits in spec/tunnel.ts spell it.
  /'digitalocean'/,
];

const providers = suite('providers: one switch, providerKit');

providers('no file outside src/providers/ compares against a provider name', () => {
  const found: string[] = [];
  for (const file of sourceFiles(join(repo, 'src'))) {
    const path = relative(repo, file);
    if (path.startsWith('src/providers/') || path === 'src/spec/tunnel.ts') continue;
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, index) => {
        if (line.trim().startsWith('//') || line.trim().startsWith('*')) return;
        if (SWITCHES.some((pattern) => pattern.test(line))) found.push(`${path}:${index + 1}: ${line.trim()}`);
      });
  }
  assert.equal(found, [], `provider switches outside providerKit:\n${found.join('\n')}`);
});

providers('the patterns catch the old shapes', () => {
  for (const line of [
    "if (options.cloudFirewall && spec.provider !== 'digitalocean') {",
    "  if (spec.provider === 'digitalocean') {",
    "const name = flags.provider ?? 'digitalocean';",
    'switch (edge.provider) {',
    "    case 'local':",
  ]) {
    assert.ok(
      SWITCHES.some((pattern) => pattern.test(line)),
      line,
    );
  }
  assert.not.ok(SWITCHES.some((pattern) => pattern.test("const name = typeof flags.provider === 'string' ? a : b;")));
});

providers('every kit carries its provider traits', () => {
  for (const name of PROVIDERS) {
    const kit = providerKit(name);
    assert.is(kit.name, name);
    assert.equal(kit.traits, PROVIDER_TRAITS[name]);
  }
  assert.ok(providerKit('digitalocean').traits.cloudFirewall);
  assert.not.ok(providerKit('local').traits.apiToken);
});

providers.run();
