// innisfree schema: the JSON Schema of the edge config (`services.innisfree` as JSON), exported from the zod
// schema that `plan` validates against. The repository keeps a copy in nix/edge-config.schema.json.
import { z } from 'zod';
import type { CommandOutcome } from '../lib/command.js';
import { EdgeConfig } from '../spec/edge-config.js';

export function edgeConfigJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(EdgeConfig, { target: 'draft-2020-12', io: 'output' }) as Record<string, unknown>;
  return {
    ...schema,
    title: 'innisfree edge configuration (services.innisfree)',
  };
}

/** Needs nothing from the context and takes no options. */
export async function schemaCommand(_ctx?: unknown, _options?: Record<string, never>): Promise<CommandOutcome> {
  return { output: `${JSON.stringify(edgeConfigJsonSchema(), null, 2)}\n` };
}
