// innisfree schema: the JSON Schema of the edge config (`services.innisfree` as JSON), exported from the zod
// schema that `plan` validates against. The repository keeps a copy in nix/edge-config.schema.json.
import { z } from 'zod';
import { EdgeConfig } from '../spec/edge-config.js';

export function edgeConfigJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(EdgeConfig, { target: 'draft-2020-12', io: 'output' }) as Record<string, unknown>;
  return {
    ...schema,
    title: 'innisfree edge configuration (services.innisfree)',
  };
}

export function schemaCommand(): string {
  return `${JSON.stringify(edgeConfigJsonSchema(), null, 2)}\n`;
}
