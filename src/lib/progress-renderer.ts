// Turns progress events into output. Only the CLI picks a renderer: JSON lines for machines, a spinner line on a
// terminal, plain timestamp-free lines otherwise (the journal adds its own timestamps).
import type { Emit, HealthEvent, LogEvent, ReadyEvent, ReloadEvent, StepEvent } from './events.js';

export type RenderMode = 'json' | 'tty' | 'plain';

export interface Renderer {
  emit: Emit;
  /** Stops any animation and leaves the cursor on a clean line. */
  close(): void;
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export interface RendererOptions {
  verbose?: boolean;
  /**
   * JSON mode: where the event lines go. A command whose result is a JSON document keeps stdout for it (events on
   * stderr); `up`, whose output is its event stream, puts them on stdout so a machine reads one stream.
   */
  jsonEvents?: 'stdout' | 'stderr';
}

/** Progress goes to `stream` (stderr); the ready event, the result a user waits for, goes to `out` (stdout). */
export function createRenderer(
  mode: RenderMode,
  stream: NodeJS.WritableStream,
  out: NodeJS.WritableStream,
  options: RendererOptions = {},
): Renderer {
  const verbose = options.verbose ?? false;
  if (mode === 'json') {
    const sink = options.jsonEvents === 'stdout' ? out : stream;
    return {
      emit: (event) => {
        if (event.type === 'log' && event.level === 'debug' && !verbose) return;
        sink.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
      },
      close: () => {},
    };
  }
  if (mode === 'plain') {
    return {
      emit: (event) => (event.type === 'ready' ? writeReady(out, event) : writePlain(stream, event, verbose)),
      close: () => {},
    };
  }
  let current: string | undefined;
  let frame = 0;
  let timer: NodeJS.Timeout | undefined;
  const draw = (): void => {
    if (current === undefined) return;
    stream.write(`\r\x1b[2K${FRAMES[frame++ % FRAMES.length]} ${current}`);
  };
  const clear = (): void => {
    if (current !== undefined) stream.write('\r\x1b[2K');
  };
  return {
    emit: (event) => {
      if (event.type === 'ready') {
        clear();
        writeReady(out, event);
        draw();
        return;
      }
      if (event.type === 'step') {
        if (event.status === 'progress') {
          // The spinner line shows how far the step is; nothing scrolls.
          current = `${event.title} (${event.detail ?? '…'})`;
          draw();
          return;
        }
        clear();
        if (event.status === 'start') {
          current = event.title;
          timer ??= setInterval(draw, 80);
          timer.unref();
          draw();
          return;
        }
        current = undefined;
        const mark = event.status === 'done' ? '✔' : event.status === 'skipped' ? '–' : '✖';
        stream.write(`${mark} ${event.title}${event.detail ? ` (${event.detail})` : ''}\n`);
        return;
      }
      if (event.type === 'log' && event.level === 'debug' && !verbose) return;
      clear();
      writePlain(stream, event, verbose);
      draw();
    },
    close: () => {
      if (timer) clearInterval(timer);
      clear();
      current = undefined;
    },
  };
}

function writeReady(out: NodeJS.WritableStream, event: ReadyEvent): void {
  const lines = [
    `Tunnel ${event.tunnel} is up. Public address: ${event.ipv4}${event.ipv6 ? ` and ${event.ipv6}` : ''}`,
    ...event.ports.map((p) => `  ${p}`),
    ...(event.tryIt ? [`Try it: ${event.tryIt}`] : []),
    ...(event.tryIt && event.tryItNote ? [`  (${event.tryItNote})`] : []),
    ...(event.tryIt6 ? [`Over IPv6: ${event.tryIt6}`] : []),
    'Stop with Ctrl-C (or SIGTERM).',
  ];
  out.write(`${lines.join('\n')}\n`);
}

/** One line per health change: a problem is a warning, a repair is news. */
export function healthLine(event: HealthEvent): string {
  const problems = event.problems.join('; ');
  switch (event.status) {
    case 'degraded':
      return `warning: tunnel ${event.tunnel} is degraded: ${problems}`;
    case 'repairing':
      return `tunnel ${event.tunnel}: repairing${event.detail ? ` (${event.detail})` : ''}`;
    case 'repaired':
      return `tunnel ${event.tunnel} is repaired and serving again${event.detail ? ` (${event.detail})` : ''}`;
    case 'failed':
      return `warning: tunnel ${event.tunnel} could not be repaired: ${problems}`;
  }
}

/** One line per reload: what changed, or why the old configuration still serves. */
export function reloadLine(event: ReloadEvent): string {
  if (event.status === 'reload-failed')
    return (
      `warning: reload of tunnel ${event.tunnel} failed: ${event.detail ?? 'unknown reason'}; the previous ` +
      `configuration keeps serving`
    );
  const changes = [...event.added.map((p) => `+${p}`), ...event.removed.map((p) => `-${p}`)];
  return (
    `tunnel ${event.tunnel} reloaded (config ${event.configHash.slice(0, 12)}` +
    `${changes.length ? `, ports ${changes.join(' ')}` : ''}${event.detail ? `, ${event.detail}` : ''})`
  );
}

function writePlain(
  stream: NodeJS.WritableStream,
  event: StepEvent | LogEvent | HealthEvent | ReloadEvent,
  verbose: boolean,
): void {
  if (event.type === 'reload') {
    stream.write(`${reloadLine(event)}\n`);
    return;
  }
  if (event.type === 'health') {
    stream.write(`${healthLine(event)}\n`);
    return;
  }
  if (event.type === 'step') {
    const word = { start: '...', progress: 'still running', done: 'done', skipped: 'skipped', failed: 'failed' }[
      event.status
    ];
    stream.write(`${event.title}: ${word}${event.detail ? ` (${event.detail})` : ''}\n`);
    return;
  }
  if (event.level === 'debug' && !verbose) return;
  const prefix = event.level === 'warn' ? 'warning: ' : event.source ? `[${event.source}] ` : '';
  stream.write(`${prefix}${event.message}\n`);
}
