// The resource ledger (resources.json in a tunnel's state dir): what a run of `up` is about to register at the
// provider, written atomically BEFORE each create together with how to find it again (tag, name, fingerprint)
// should the create's response be lost, and updated with the id once it is known. Whatever the ledger lists is
// owned by that run: its failure and signal paths remove it, a --keep run hands it over (the ledger is emptied),
// and a run that was SIGKILLed leaves the ledger for the next `up`, `down` or `clean` to clean up.
// Without a path (tests, providers that do not need one) the ledger lives in memory only.
import { readFile, rm } from 'node:fs/promises';
import { writeJsonAtomic } from './files.js';

export type ResourceKind =
  | 'droplet'
  | 'ssh-key'
  | 'firewall'
  | 'dns-record'
  | 'reserved-ip-assignment'
  /** A reserved IPv6 this run reserved (`--reserved-ipv6 new`): released again unless the edge is kept. */
  | 'reserved-ipv6'
  | 'reserved-ipv6-assignment';

export interface LedgerEntry {
  /** Unique in this ledger ("droplet-1"). */
  key: string;
  kind: ResourceKind;
  /** How to find it again when the id never came back: provider-specific (tag, name, fingerprint, domain…). */
  find: Record<string, string | number>;
  /** The provider's id once the create answered. */
  id?: string;
  /** 'creating' until the create's response came back (it may or may not exist), then 'created'. */
  state: 'creating' | 'created';
  at: string;
}

interface LedgerFile {
  version: 1;
  tunnel: string;
  resources: LedgerEntry[];
}

export class ResourceLedger {
  readonly path: string | undefined;
  readonly tunnel: string;
  #entries: LedgerEntry[];
  #counter = 0;
  readonly #now: () => number;

  private constructor(path: string | undefined, tunnel: string, entries: LedgerEntry[], now: () => number) {
    this.path = path;
    this.tunnel = tunnel;
    this.#entries = entries;
    this.#now = now;
    for (const e of entries) this.#counter = Math.max(this.#counter, Number(/-(\d+)$/.exec(e.key)?.[1] ?? 0));
  }

  /** The ledger at `path`, with whatever an earlier run left in it; a torn or foreign file counts as empty. */
  static async open(path: string | undefined, tunnel: string, now: () => number = Date.now): Promise<ResourceLedger> {
    if (path === undefined) return new ResourceLedger(undefined, tunnel, [], now);
    let entries: LedgerEntry[] = [];
    try {
      const parsed = JSON.parse(await readFile(path, 'utf8')) as Partial<LedgerFile>;
      if (Array.isArray(parsed.resources)) entries = parsed.resources.filter(isEntry);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' && !(error instanceof SyntaxError)) throw error;
    }
    return new ResourceLedger(path, tunnel, entries, now);
  }

  static memory(tunnel: string): ResourceLedger {
    return new ResourceLedger(undefined, tunnel, [], Date.now);
  }

  entries(): readonly LedgerEntry[] {
    return [...this.#entries];
  }

  get empty(): boolean {
    return this.#entries.length === 0;
  }

  /** Records, durably, that `kind` is about to be created and how to find it. Call before the create request. */
  async intend(kind: ResourceKind, find: Record<string, string | number>): Promise<LedgerEntry> {
    const entry: LedgerEntry = {
      key: `${kind}-${++this.#counter}`,
      kind,
      find,
      state: 'creating',
      at: new Date(this.#now()).toISOString(),
    };
    this.#entries.push(entry);
    await this.save();
    return entry;
  }

  /** The create answered: the resource exists with this id. */
  async made(entry: LedgerEntry, id: string | number): Promise<void> {
    const own = this.#entries.find((e) => e.key === entry.key);
    if (!own) return;
    own.id = String(id);
    own.state = 'created';
    entry.id = own.id;
    entry.state = 'created';
    await this.save();
  }

  /** The resource is gone (removed, or never made). */
  async forget(entry: LedgerEntry): Promise<void> {
    this.#entries = this.#entries.filter((e) => e.key !== entry.key);
    await this.save();
  }

  /** Everything is handed over (--keep) or removed. */
  async clear(): Promise<void> {
    this.#entries = [];
    await this.save();
  }

  private async save(): Promise<void> {
    if (this.path === undefined) return;
    if (this.#entries.length === 0) {
      await rm(this.path, { force: true });
      return;
    }
    const file: LedgerFile = { version: 1, tunnel: this.tunnel, resources: this.#entries };
    await writeJsonAtomic(this.path, file);
  }
}

function isEntry(value: unknown): value is LedgerEntry {
  const e = value as Partial<LedgerEntry> | null;
  return (
    !!e && typeof e.key === 'string' && typeof e.kind === 'string' && typeof e.find === 'object' && e.find !== null
  );
}
