// The one conversion of a command line into positional arguments and options, per the options the command
// declares. Values stay exactly as typed: "007" is not 7 and "1e3" is not 1000 (cac's parser, mri, turns
// numeric-looking values into numbers, and the spec parsers want the text). Otherwise it reads argv as mri does:
// --name value, --name=value, -n value, grouped short flags (-ab), --no-name for false, repeated options as a list,
// a value that starts with "-" is no value, and everything after "--" is left alone.
import { camelCase } from './names.js';

/** One declared option, in cac's notation: "-n, --name <name>", "--json", "--no-wait". */
export interface OptionSpec {
  /** Names without dashes, e.g. ["n", "name"]; the longest one, camel-cased, is the key in ParsedArgv.options. */
  names: string[];
  /** "<value>" or "[value]" follows the names. */
  takesValue: boolean;
  /** Written --no-name: defaults to true, --no-name sets false. */
  negated: boolean;
  /** As declared, for messages: "--name <name>". */
  rawName: string;
}

export type OptionValue = string | boolean | Array<string | boolean>;

export interface ParsedArgv {
  positional: string[];
  /** Keyed by the option's camel-cased long name; options the command does not declare are kept under theirs. */
  options: Record<string, OptionValue>;
  /** The words after "--". */
  rest: string[];
  /** Options given that the command does not declare, as written ("--prots", "-x"). */
  unknown: string[];
}

/** Reads "-n, --name <name>" (cac's notation) into an OptionSpec. */
export function optionSpec(rawName: string): OptionSpec {
  const takesValue = /[<[]/.test(rawName);
  let negated = false;
  const names = rawName
    .replace(/[<[].*/, '')
    .split(',')
    .map((part) => {
      const name = part.trim().replace(/^-{1,2}/, '');
      if (!name.startsWith('no-')) return name;
      negated = true;
      return name.slice(3);
    });
  return { names, takesValue, negated, rawName };
}

/** The key an option's value is found under: its longest name, camel-cased ("token-file" → "tokenFile"). */
export function optionKey(spec: Pick<OptionSpec, 'names'>): string {
  return camelCase(spec.names.reduce((a, b) => (b.length > a.length ? b : a)));
}

export function parseArgv(argv: readonly string[], specs: readonly OptionSpec[]): ParsedArgv {
  const byName = new Map<string, OptionSpec>();
  for (const spec of specs) for (const name of spec.names) byName.set(camelCase(name), spec);
  const parsed: ParsedArgv = { positional: [], options: {}, rest: [], unknown: [] };
  // A negated option is true until --no-name says otherwise.
  const defaults = new Set<string>();
  for (const spec of specs) {
    if (!spec.negated) continue;
    parsed.options[optionKey(spec)] = true;
    defaults.add(optionKey(spec));
  }
  const keyOf = (name: string, written: string): string => {
    const spec = byName.get(camelCase(name));
    if (spec) return optionKey(spec);
    if (!parsed.unknown.includes(written)) parsed.unknown.push(written);
    return camelCase(name);
  };
  const set = (key: string, value: string | boolean): void => {
    const old = parsed.options[key];
    parsed.options[key] = old === undefined || defaults.delete(key) ? value : [...[old].flat(), value];
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      parsed.rest = argv.slice(i + 1);
      break;
    }
    const dashes = /^-*/.exec(arg)![0].length;
    if (dashes === 0) {
      parsed.positional.push(arg);
      continue;
    }
    const body = arg.slice(dashes);
    if (body.startsWith('no-')) {
      const key = keyOf(body.slice(3), `--${body.slice(3)}`);
      defaults.delete(key);
      parsed.options[key] = false;
      continue;
    }
    const eq = body.indexOf('=');
    const name = eq === -1 ? body : body.slice(0, eq);
    // Short flags group: -ab is -a -b, and a value belongs to the last one.
    const names = dashes === 2 ? [name] : [...name];
    const last = names.pop()!;
    for (const flag of names) set(keyOf(flag, `-${flag}`), true);
    const key = keyOf(last, `${'-'.repeat(dashes)}${last}`);
    const spec = byName.get(camelCase(last));
    const inline = eq === -1 ? '' : body.slice(eq + 1);
    if (spec && !spec.takesValue) {
      // As in mri, a boolean takes "true" or "false" (after "=" or as the next word); other text after "=" is a
      // positional argument.
      const next = inline === '' ? argv[i + 1] : undefined;
      const word = inline !== '' ? inline : next === 'true' || next === 'false' ? argv[++i]! : '';
      if (word !== '' && word !== 'true' && word !== 'false') parsed.positional.push(word);
      set(key, word !== 'false');
      continue;
    }
    if (inline !== '') set(key, inline);
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('-')) set(key, argv[++i]!);
    else set(key, true);
  }
  return parsed;
}
