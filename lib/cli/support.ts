import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline/promises';
import { UserError } from '../common/errors.ts';
import { tokenVariables } from '../chroma/api-token.ts';
import { redact } from '../report/secrets.ts';
import { parseHttpUrl } from '../locations/server-url.ts';

/** Options shared by every command that reaches a remote volume. */
export interface TargetFlags {
  target?: string;
  volume: string;
  dbDir: string;
  sshKey?: string;
  sshOption: string[];
  restartCmd?: string;
  /** fly: `--machine ID` and `--config fly.toml`. */
  machine?: string;
  config?: string;
  healthUrl?: string;
  healthTimeout: string;
  restartTimeout: string;
  yes?: boolean;
  json?: boolean;
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function requireFlag<T>(name: string, value: T | undefined): T {
  if (value === undefined || value === '') throw new UserError(`missing ${name}; see --help`);
  return value;
}

/** A local Chroma persist dir: exists, is a directory, holds chroma.sqlite3. */
export function parseSourceDir(raw: string): string {
  const dir = path.resolve(raw);
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new UserError(`--source ${raw}: no such directory`);
  }
  if (!st.isDirectory()) throw new UserError(`--source ${raw}: not a directory`);
  if (!fs.existsSync(path.join(dir, 'chroma.sqlite3'))) {
    throw new UserError(`--source ${raw}: no chroma.sqlite3 inside; point --source at a Chroma persist directory`);
  }
  return dir;
}

export function parseSshKey(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  const file = path.resolve(raw);
  if (!fs.existsSync(file)) throw new UserError(`--ssh-key ${raw}: no such file`);
  return file;
}

/** `--health-url`: http(s) with its scheme, no credentials (a token goes in CHROMA_API_KEY). */
export function parseHealthUrl(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  parseHttpUrl('--health-url', raw, { example: 'http://127.0.0.1:8000', instead: `put the token in ${tokenVariables()} (sent as the x-chroma-token header)` });
  return raw.replace(/\/+$/, '');
}

export function parseDuration(flag: string, raw: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(raw.trim());
  if (!m) throw new UserError(`${flag} ${raw}: not a duration; use e.g. 30s, 2m or 500ms`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
}

/** `--restart-timeout`: a duration of at least one second (the host's `timeout` counts whole seconds). */
export function parseRestartTimeout(raw: string): number {
  const ms = parseDuration('--restart-timeout', raw);
  if (ms < 1000) throw new UserError(`--restart-timeout ${raw}: must be at least 1s`);
  return ms;
}

export function parsePositiveInt(flag: string, raw: string, min = 1): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new UserError(`${flag} ${raw}: must be a whole number >= ${min}`);
  return n;
}

export function parseNonNegativeNumber(flag: string, raw: string): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n < 0) throw new UserError(`${flag} ${raw}: must be a number >= 0`);
  return n;
}

/** A number > 0, decimals allowed (e.g. a limit in milliseconds). */
export function parsePositiveNumber(flag: string, raw: string): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n <= 0) throw new UserError(`${flag} ${raw}: must be a number > 0`);
  return n;
}

/**
 * Destructive steps need consent: --yes, or a "y" typed at a terminal. Without a terminal and
 * without --yes the run is refused before anything starts.
 */
export async function confirmOrRefuse(question: string, yes: boolean | undefined): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY || !process.stdout.isTTY) {
    throw new UserError(`${question}: refusing without a terminal to confirm; pass --yes to run non-interactively`);
  }
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout });
  const answer = (await rl.question(`${question} [y/N] `)).trim().toLowerCase();
  rl.close();
  if (answer !== 'y' && answer !== 'yes') throw new UserError('aborted: nothing was changed', 1);
}

/** Ctrl-C / SIGTERM abort the run once; the runbook unwinds its compensation stack. */
export function abortOnSignals(): AbortController {
  const ac = new AbortController();
  let count = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    count++;
    if (count === 1) {
      process.stderr.write(`\n${sig}: stopping; undoing what was done (a second signal is ignored while rollback runs)\n`);
      ac.abort(sig);
    } else {
      process.stderr.write(`${sig}: rollback in progress, please wait\n`);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return ac;
}

/** Last-resort handler: one line for the user, a stack only with CHROMA_FERRY_DEBUG=1. */
export function reportFatal(e: unknown): number {
  if (e instanceof UserError) {
    process.stderr.write(`chroma-ferry: ${redact(e.message)}\n`);
    return e.exitCode;
  }
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`chroma-ferry: error: ${redact(msg)}\n`);
  if (process.env.CHROMA_FERRY_DEBUG && e instanceof Error && e.stack) process.stderr.write(`${redact(e.stack)}\n`);
  return 1;
}
