// The one shape every command returns to the CLI, so a command never prints or exits itself.

/** What a command hands back: text for stdout and, rarely, a non-zero exit code that is not an error. */
export interface CommandOutcome {
  output?: string;
  exitCode?: number;
}
