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

/** A remote command that failed: what it was doing, its exit status and the tail of stderr. */
export class RemoteCommandError extends Error {
  constructor(
    readonly what: string,
    readonly exitCode: number,
    readonly stderr: string,
  ) {
    const tail = stderr.trim().split('\n').slice(-3).join(' | ');
    super(`${what} failed (exit ${exitCode})${tail ? `: ${tail}` : ''}`);
    this.name = 'RemoteCommandError';
  }
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}
