// Reading pids from pid files. A pid file that is being written can be read empty, and Number('') is 0:
// process.kill(0, signal) signals the caller's whole process group, so every pid read from a file goes through here.

/**
 * The pid in a pid file's text, or undefined unless it is a whole number above 1 (0 is our process group, 1 is init).
 */
export function parsePid(text: string): number | undefined {
  const trimmed = text.trim();
  if (!/^\d{1,10}$/.test(trimmed)) return undefined;
  const pid = Number(trimmed);
  return pid > 1 ? pid : undefined;
}
