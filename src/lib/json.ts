// JSON text that may be torn or hand-edited (a record on disk, a snapshot read back from an edge): undefined instead of
// a SyntaxError, so the caller's schema check reports one "not a valid …" for both bad JSON and a bad shape.

/** The parsed value, or undefined when the text is not JSON. */
export function parseJsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
