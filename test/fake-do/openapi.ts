// Checks requests (and, when asked, the fake's own responses) against DigitalOcean's OpenAPI schemas, copied into
// test/fixtures/digitalocean/openapi-subset.json by extract-openapi.ts. Unknown query parameters are violations
// too: the client must send only what the API documents.
import { readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';

interface Parameter {
  name: string;
  in: 'query' | 'path' | 'header';
  required: boolean;
  schema: object;
}

interface Operation {
  operationId: string;
  parameters: Parameter[];
  body: object | null;
  bodyRequired: boolean;
  responses: Record<string, object | null>;
}

interface Subset {
  operations: Record<string, Operation>;
  components: { schemas: Record<string, object> };
}

const subset = JSON.parse(
  readFileSync(new URL('../fixtures/digitalocean/openapi-subset.json', import.meta.url), 'utf8'),
) as Subset;

// The spec's region list is out of date (it lacks atl1, for one); region slugs are checked as plain strings.
delete (subset.components.schemas.region_slug as { enum?: unknown }).enum;

// The spec's patterns use escapes that are fine in JavaScript's legacy RegExp but not in unicode mode.
const regExp = Object.assign((source: string, flags?: string) => new RegExp(source, (flags ?? '').replace('u', '')), {
  code: 'new RegExp',
});

function makeAjv(coerceTypes: boolean): Ajv {
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false, coerceTypes, code: { regExp } });
  ajv.addSchema({ $id: 'do', components: subset.components });
  return ajv;
}

const bodyAjv = makeAjv(false);
const paramAjv = makeAjv(true);

function rebase(schema: object): object {
  return JSON.parse(JSON.stringify(schema).replace(/"#\/components\//g, '"do#/components/')) as object;
}

const compiled = new Map<string, ValidateFunction>();
function validator(ajv: Ajv, key: string, schema: object): ValidateFunction {
  let fn = compiled.get(key);
  if (!fn) {
    fn = ajv.compile(rebase(schema));
    compiled.set(key, fn);
  }
  return fn;
}

export const OPERATION_KEYS = Object.keys(subset.operations);

/** The operation key ("POST /v2/droplets") and path parameters for a concrete request, if the subset has it. */
export function matchOperation(
  method: string,
  path: string,
): { key: string; params: Record<string, string> } | undefined {
  for (const key of OPERATION_KEYS) {
    const [m, template] = key.split(' ') as [string, string];
    if (m !== method) continue;
    const names: string[] = [];
    const pattern = new RegExp(
      `^${template.replace(/\{([^}]+)\}/g, (_, name: string) => {
        names.push(name);
        return '([^/]+)';
      })}$`,
    );
    const match = pattern.exec(path);
    if (match) return { key, params: Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(match[i + 1]!)])) };
  }
  return undefined;
}

function describe(fn: ValidateFunction): string {
  return (fn.errors ?? [])
    .slice(0, 5)
    .map(
      (e) =>
        `${e.instancePath || '(root)'} ${e.message ?? ''}` +
        `${e.params && 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : ''}`,
    )
    .join('; ');
}

/** Problems with a request, as readable strings; empty when it conforms. */
export function checkRequest(
  key: string,
  pathParams: Record<string, string>,
  query: Record<string, string>,
  body: unknown,
): string[] {
  const op = subset.operations[key];
  if (!op) return [`${key} is not a documented operation`];
  const problems: string[] = [];
  const known = new Set(op.parameters.filter((p) => p.in === 'query').map((p) => p.name));
  for (const name of Object.keys(query))
    if (!known.has(name)) problems.push(`${key}: undocumented query parameter "${name}"`);
  for (const param of op.parameters) {
    if (param.in === 'header') continue;
    const value = param.in === 'path' ? pathParams[param.name] : query[param.name];
    if (value === undefined) {
      if (param.required) problems.push(`${key}: missing ${param.in} parameter "${param.name}"`);
      continue;
    }
    const fn = validator(paramAjv, `${key} param ${param.name}`, { type: 'object', properties: { v: param.schema } });
    if (!fn({ v: value })) problems.push(`${key}: ${param.in} parameter "${param.name}"=${value}: ${describe(fn)}`);
  }
  if (op.body) {
    if (body === undefined) {
      if (op.bodyRequired) problems.push(`${key}: missing request body`);
    } else {
      const fn = validator(bodyAjv, `${key} body`, op.body);
      if (!fn(body)) problems.push(`${key}: body ${describe(fn)}`);
    }
  } else if (body !== undefined) {
    problems.push(`${key}: unexpected request body`);
  }
  return problems;
}

/** Problems with a 2xx response body the fake produced (used to keep the fake faithful). */
export function checkResponse(key: string, status: number, body: unknown): string[] {
  const op = subset.operations[key];
  if (!op) return [];
  const schema = op.responses[String(status)];
  if (schema === undefined)
    return [`${key}: status ${status} is not documented (documented: ${Object.keys(op.responses).join(', ')})`];
  if (schema === null) return body === undefined ? [] : [`${key}: ${status} should have no body`];
  const fn = validator(bodyAjv, `${key} response ${status}`, schema);
  return fn(body) ? [] : [`${key} → ${status}: ${describe(fn)}`];
}
