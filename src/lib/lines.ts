// Turning a child's output stream into log lines: chunks arrive split anywhere, lines are what users read.
import { StringDecoder } from 'node:string_decoder';

/** Removes ANSI colour and cursor sequences (tools such as deploy-rs colour their log levels). */
export function stripAnsi(text: string): string {
  // CSI sequences (ESC [ … final byte) and OSC sequences (ESC ] … BEL or ESC \): control characters are the point.
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-?]*[ -/]*[@-~]/g, '').replace(/\x1b\][^\x07\x1b]*(\x07|\x1b\\)/g, '');
}

export interface LineSplitter {
  push(chunk: string | Buffer): void;
  /** Emits a last line that had no newline. */
  flush(): void;
}

/** Calls onLine once per complete line (without its line ending, "\r" progress redraws treated as line ends). */
export function createLineSplitter(onLine: (line: string) => void): LineSplitter {
  let pending = '';
  // A multi-byte character may be split across two chunks.
  const decoder = new StringDecoder('utf8');
  return {
    push(chunk) {
      pending += typeof chunk === 'string' ? chunk : decoder.write(chunk);
      // A "\r" at the very end may be the first half of "\r\n": it stays pending until the next chunk.
      const parts = pending.split(/\r\n|\n|\r(?=[^\n])/);
      pending = parts.pop() ?? '';
      for (const part of parts) onLine(part);
    },
    flush() {
      const last = (pending + decoder.end()).replace(/\r$/, '');
      if (last !== '') onLine(last);
      pending = '';
    },
  };
}
