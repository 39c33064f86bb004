// Progress is a stream of typed events. Core code emits them; only the CLI decides how they look (spinner on a TTY,
// plain lines for the journal, JSON lines for machines).

/** 'progress': a step that takes long says how far it is (detail), e.g. elapsed time and the droplet's status. */
export type StepStatus = 'start' | 'progress' | 'done' | 'skipped' | 'failed';

export interface StepEvent {
  type: 'step';
  /** Stable identifier, e.g. "edge.create", "deploy", "wireguard.up". */
  id: string;
  status: StepStatus;
  title: string;
  detail?: string;
}

export interface LogEvent {
  type: 'log';
  level: 'debug' | 'info' | 'warn';
  message: string;
  /** Where a streamed line came from, e.g. "deploy-rs" or "nginx". */
  source?: string;
}

/** A tunnel is serving: what the user came for. Renderers put it on stdout. */
export interface ReadyEvent {
  type: 'ready';
  tunnel: string;
  ipv4: string;
  ipv6?: string;
  /** "198.51.100.1:8080/tcp -> 127.0.0.1:8080" lines, one per public port mapping. */
  ports: string[];
  /** A command that reaches the first TCP port from a client, when the provider can offer one. */
  tryIt?: string;
  /** The same over the edge's public IPv6, when it serves IPv6. */
  tryIt6?: string;
  /** Who runs the try-it command and from which addresses (the local provider's client). */
  tryItNote?: string;
}

/**
 * The watch of a ready tunnel: it found problems (degraded), is repairing them, repaired them, or gave up (failed;
 * `up` then exits 7). `problems` are clauses a user can read, e.g. "the edge's forwarder (nginx) is not running".
 */
export interface HealthEvent {
  type: 'health';
  tunnel: string;
  status: 'degraded' | 'repairing' | 'repaired' | 'failed';
  problems: string[];
  /** What the repair does or did, e.g. "restarting the edge's forwarder and WireGuard; renewing the home link". */
  detail?: string;
}

/**
 * A reload of a running tunnel (SIGHUP or `innisfree reload`): `reloaded` with the config now serving and the public
 * ports added and removed ("8081/tcp"), or `reload-failed` with the reason; the previous config then keeps serving.
 */
export interface ReloadEvent {
  type: 'reload';
  tunnel: string;
  status: 'reloaded' | 'reload-failed';
  configHash: string;
  added: string[];
  removed: string[];
  /** reload-failed: the one-line reason (what, why, what to do). reloaded: e.g. "nothing changed". */
  detail?: string;
}

export type ProgressEvent = StepEvent | LogEvent | ReadyEvent | HealthEvent | ReloadEvent;

export type Emit = (event: ProgressEvent) => void;

export const silent: Emit = () => {};

/** Runs `work` between a start and a done/failed event for one step. */
export async function step<T>(emit: Emit, id: string, title: string, work: () => Promise<T>): Promise<T> {
  emit({ type: 'step', id, status: 'start', title });
  try {
    const result = await work();
    emit({ type: 'step', id, status: 'done', title });
    return result;
  } catch (error) {
    emit({ type: 'step', id, status: 'failed', title, detail: error instanceof Error ? error.message : String(error) });
    throw error;
  }
}
