/** Exit codes of every holdfast command (docs/cli.md). */
export const ExitCode = Object.freeze({
  OK: 0,
  /** The command ran and found a problem: a failed check, an invalid image. */
  FAILED: 1,
  /** Bad usage: unknown command or option, missing argument. */
  USAGE: 2,
  /** The environment is missing something (XS engine not built, tool not installed). */
  ENVIRONMENT: 3,
  /** `holdfast sim`: the simulated fleet broke a promise (a record lost, a counter regressed, a replay or forgery accepted, a device bricked, an audit chain broken). */
  INVARIANT_BROKEN: 4,
});
