/**
 * Errors the user can fix. The CLI prints `message` as one line (no stack) and exits with
 * `exitCode` (2 by default: bad input / usage).
 */
export class UserError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 2) {
    super(message);
    this.name = 'UserError';
    this.exitCode = exitCode;
  }
}

/**
 * The host could not be reached, or the connection to it dropped (ssh exit 255): the remote
 * command may or may not have run. Before any change it is a refusal like any UserError; once a
 * swap has started, the runbook reconnects and asks the volume what happened.
 */
export class HostUnreachable extends UserError {
  constructor(message: string) {
    super(message);
    this.name = 'HostUnreachable';
  }
}

/**
 * A remote command that failed: what it was doing, its exit status and the tail of stderr. A
 * status that is a refusal (lib/remote/refusals.ts registers the describer) gives the refusal's
 * one line instead of the raw tail.
 */
export class RemoteCommandError extends Error {
  constructor(
    readonly what: string,
    readonly exitCode: number,
    readonly stderr: string,
  ) {
    const tail = stderr.trim().split('\n').slice(-3).join(' | ');
    super(`${what} failed (exit ${exitCode})${tail ? `: ${tail}` : ''}`);
    this.name = 'RemoteCommandError';
    const refusal = refusalDescriber?.(this);
    if (refusal) this.message = `${what}: ${refusal}`;
  }
}

let refusalDescriber: ((e: RemoteCommandError) => string | undefined) | undefined;

/** Set by lib/remote/refusals.ts (errors.ts imports nothing, so there is no import cycle). */
export function describeRefusalsWith(fn: (e: RemoteCommandError) => string | undefined): void {
  refusalDescriber = fn;
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}
