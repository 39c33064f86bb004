// Golden fixtures shared with the Nix tests: test/fixtures/plan/<case>/{input.json, edge.json, home.json}.
// Set UPDATE_FIXTURES=1 to rewrite the expected files after an intended change (then review the diff).
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Allocation } from '../../src/addressing.js';
import type { PlanKeys } from '../../src/plan.js';

export const fixturesDir = fileURLToPath(new URL('../fixtures/', import.meta.url));
export const planFixturesDir = join(fixturesDir, 'plan');

export interface PlanFixtureInput {
  description: string;
  /** A tunnel file, as `--file` would read it. */
  tunnel: Record<string, unknown>;
  allocation: Allocation;
  keys: PlanKeys;
}

export function planFixtureNames(): string[] {
  return readdirSync(planFixturesDir).sort();
}

export function readPlanFixture(name: string): {
  input: PlanFixtureInput;
  edge: string | undefined;
  home: string | undefined;
} {
  const dir = join(planFixturesDir, name);
  const read = (file: string): string | undefined => {
    try {
      return readFileSync(join(dir, file), 'utf8');
    } catch {
      return undefined;
    }
  };
  return {
    input: JSON.parse(read('input.json')!) as PlanFixtureInput,
    edge: read('edge.json'),
    home: read('home.json'),
  };
}

export function writeFixtureFile(name: string, file: string, content: string): void {
  writeFileSync(join(planFixturesDir, name, file), content);
}

export const updating = process.env.UPDATE_FIXTURES === '1';
