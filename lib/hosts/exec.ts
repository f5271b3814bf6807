import type { Readable } from 'node:stream';
import { RemoteCommandError } from '../common/errors.ts';
import { redact } from '../report/secrets.ts';

export interface ExecOptions {
  stdin?: Readable | string;
  signal?: AbortSignal;
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Words for the error message: what was being done. */
  what: string;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/**
 * execa, loaded on first use: its ~150 modules take ~130 ms to load, which the CLI's start would
 * otherwise spend before its first remote command (a deploy's ssh connection is opened without it).
 */
let execaModule: Promise<typeof import('execa')> | undefined;
export function loadExeca(): Promise<typeof import('execa')> {
  return (execaModule ??= import('execa'));
}

/** Run argv without a shell; never throws for a non-zero exit (the caller decides). */
export async function execArgv(argv: readonly string[], opts: ExecOptions): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (!file) throw new Error('empty argv');
  const input = opts.stdin;
  const { execa } = await loadExeca();
  const child = execa(file, args, {
    reject: false,
    stripFinalNewline: false,
    cancelSignal: opts.signal,
    env: opts.env,
    extendEnv: true,
    cwd: opts.cwd,
    stdin: input === undefined ? 'ignore' : 'pipe',
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (input !== undefined && child.stdin) {
    if (typeof input === 'string') child.stdin.end(input);
    else input.pipe(child.stdin);
    child.stdin.on('error', () => {}); // EPIPE when the command exits early: reported via exit code
  }
  const r = await child;
  if (r.isCanceled) throw new Error(`${opts.what}: cancelled`);
  if (r.failed && r.exitCode === undefined) {
    const cause = r.cause instanceof Error ? r.cause.message : String(r.originalMessage ?? 'failed to start');
    throw new RemoteCommandError(opts.what, -1, redact(cause));
  }
  return { stdout: String(r.stdout ?? ''), stderr: redact(String(r.stderr ?? '')), exitCode: r.exitCode ?? -1 };
}

/** Run argv; reject with RemoteCommandError unless it exits 0. */
export async function execChecked(argv: readonly string[], opts: ExecOptions): Promise<ExecResult> {
  const r = await execArgv(argv, opts);
  if (r.exitCode !== 0) throw new RemoteCommandError(opts.what, r.exitCode, r.stderr);
  return r;
}
