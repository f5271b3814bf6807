/**
 * Why a remote script refused: one exit status per reason, mapped to one clear line in one table.
 *
 * A script refuses with `refuseSh(reason, details)`: it prints `ferry_refusal=REASON` and its
 * details as `ferry_KEY=VALUE` lines on stderr, then exits with the reason's code, so `sh -e
 * plan.sh` stops exactly there. The runbook turns the status back into the line with
 * `refusalError` (or runs the script through `runRefusing`).
 */
import { describeRefusalsWith, RemoteCommandError, UserError } from '../common/errors.ts';
import { volumeFullLine } from '../common/volume-full.ts';
import type { RemoteHost, RunOptions, RunResult } from '../hosts/remote-host.ts';
import type { RemoteScript } from './shell.ts';
import { describeLockHolder, parseLockHolder } from '../volume/lock-holder.ts';

export type RefusalReason =
  | 'lock-held'
  | 'missing-tools'
  | 'no-volume'
  | 'volume-full'
  | 'not-a-dir'
  | 'volume-changed'
  | 'verified-in-the-way'
  | 'swap-interrupted'
  | 'swap-timeout'
  | 'swap-reversed'
  | 'live-is-symlink'
  | 'live-not-chroma'
  | 'backup-unstable';

/** The details a refusing script printed (`ferry_KEY=VALUE`, KEY without the prefix). */
export type RefusalDetails = Readonly<Record<string, string | undefined>>;

/** Where the script ran, for the line: a host label and the volume path. */
export interface RefusalWhere {
  host?: string;
  volume?: string;
}

interface RefusalKind {
  /** The script's exit status. Distinct, above the scripts' own failure codes (1-22), below 126. */
  code: number;
  /** The CLI's exit status for it: 2 = refused before anything changed, 1 = failed after. */
  cliExit: 1 | 2;
  line(d: RefusalDetails, w: Required<RefusalWhere>): string;
}

/** THE table: every refusal of every remote script, its status and its one line. */
export const REFUSALS: Readonly<Record<RefusalReason, RefusalKind>> = {
  'lock-held': {
    code: 80, cliExit: 2,
    line: (d, w) => `another run holds the deploy lock on ${w.volume}${describeLockHolder(parseLockHolder(d.holder))}`,
  },
  'missing-tools': {
    code: 81, cliExit: 2,
    line: (d, w) => `${w.host} lacks required tools: ${(d.missing ?? '').trim() || '?'}; install them on the remote host`,
  },
  'no-volume': {
    code: 82, cliExit: 2,
    line: (_d, w) => `volume ${w.volume} does not exist on ${w.host}; create it or fix --volume`,
  },
  'volume-full': {
    code: 83, cliExit: 2,
    line: (d, w) => volumeFullLine(d.free_mib ?? '?', d.need_mib ?? '?', `${w.volume} on ${w.host}`),
  },
  'not-a-dir': {
    code: 84, cliExit: 2,
    line: (d) => `${d.path ?? 'a data dir'} is a ${d.kind ?? 'non-directory'}, not a directory; chroma-ferry only moves real directories: replace it by the directory it stands for`,
  },
  'volume-changed': {
    code: 85, cliExit: 2,
    line: (d, w) => `the volume ${w.volume} changed since it was inspected (${d.what ?? 'data dirs moved'}); nothing was renamed: run the command again`,
  },
  'verified-in-the-way': {
    code: 86, cliExit: 2,
    line: (d) => `${d.path ?? 'NAME.old'} holds the last verified data (${d.id ?? '?'}) and the swap would trash it; finish or roll back the unverified deploy first (chroma-ferry rollback)`,
  },
  'swap-interrupted': {
    code: 87, cliExit: 1,
    line: (d) => `the swap of run ${d.run ?? '?'} stopped at phase ${d.phase || 'intent'} (its remote worker ended with status ${d.rc ?? '?'}); the next chroma-ferry command finishes or reverses it`,
  },
  'swap-timeout': {
    code: 88, cliExit: 1,
    line: (d) => `the swap of run ${d.run ?? '?'} still runs on the remote after ${d.seconds ?? '?'} s (phase ${d.phase || 'intent'}); the next chroma-ferry command finishes or reverses it`,
  },
  'swap-reversed': {
    code: 89, cliExit: 1,
    line: (d) => `a rename of the swap of run ${d.run ?? '?'} failed on the remote and the swap was reversed: old data restored; server not verified`,
  },
  'live-is-symlink': {
    code: 110, cliExit: 2,
    line: (d) => `${d.path ?? 'the live dir'} is a symbolic link (to ${d.target || '?'}), not a directory: no backup taken (its archive would hold the link, not the data); make it the real directory (move the directory it points to into its place) and run again`,
  },
  'live-not-chroma': {
    code: 111, cliExit: 2,
    line: (d) => `${d.path ?? 'the live dir'} holds no chroma.sqlite3 (a regular file): it is not a Chroma persist dir, no backup taken; check --volume and --db-dir`,
  },
  'backup-unstable': {
    code: 112, cliExit: 2,
    line: (d) => `${d.path ?? 'the live dir'} kept changing while it was read (${d.attempts ?? '?'} attempts; last: ${d.why || 'changed'}): no backup kept; pause writes or stop the server for the backup, or run it when the server is idle`,
  },
};

const BY_CODE = new Map(Object.entries(REFUSALS).map(([name, k]) => [k.code, name as RefusalReason]));

/** Every refusal status (a wrapper passes them through unchanged). */
export function refusalCodes(): number[] {
  return [...BY_CODE.keys()];
}

/**
 * sh code that refuses with `reason`: each detail (a sh expression we wrote, e.g. `"$free"`)
 * printed as `ferry_KEY=VALUE` on stderr, then `exit CODE`.
 */
export function refuseSh(reason: RefusalReason, details: Record<string, string> = {}): string {
  const lines = [`printf 'ferry_refusal=%s\\n' ${reason} >&2`];
  for (const [key, expr] of Object.entries(details)) {
    if (!/^[a-z][a-z0-9_]*$/.test(key)) throw new Error(`refusal detail key ${key}: lowercase letters, digits and _ only`);
    lines.push(`printf 'ferry_${key}=%s\\n' ${expr} >&2`);
  }
  return `{ ${lines.join('; ')}; exit ${REFUSALS[reason].code}; }`;
}

export interface Refusal {
  reason: RefusalReason;
  code: number;
  details: RefusalDetails;
}

/** The refusal a failed remote command reported through its status, or undefined for any other failure. */
export function refusalOf(e: unknown): Refusal | undefined {
  if (!(e instanceof RemoteCommandError)) return undefined;
  const reason = BY_CODE.get(e.exitCode);
  if (!reason) return undefined;
  const details: Record<string, string> = {};
  for (const line of e.stderr.split('\n')) {
    const m = /^ferry_([a-z][a-z0-9_]*)=(.*)$/.exec(line.trimEnd());
    if (m) details[m[1]!] = m[2]!;
  }
  // A status in our range from something else (the user's command, a tool) is not a refusal.
  if (details.refusal !== reason) return undefined;
  return { reason, code: e.exitCode, details };
}

/** The one line for a refusal; without `where.volume`, the dir the script named (`ferry_dir`), if any. */
export function refusalLine(r: Refusal, where: RefusalWhere = {}): string {
  return REFUSALS[r.reason].line(r.details, { host: where.host ?? 'the remote host', volume: where.volume ?? r.details.dir ?? 'the volume' });
}

// A RemoteCommandError carrying a refusal says the refusal's line, also where its caller ran the
// script with host.run rather than runRefusing (e.g. "volume full: ..." from a deploy step).
describeRefusalsWith((e) => {
  const r = refusalOf(e);
  return r && refusalLine(r);
});

/** A UserError holding the refusal's line and CLI exit status, or undefined when `e` is no refusal. */
export function refusalError(e: unknown, where: RefusalWhere = {}): UserError | undefined {
  const r = refusalOf(e);
  return r ? new UserError(refusalLine(r, where), REFUSALS[r.reason].cliExit) : undefined;
}

/** host.run, with a refusal turned into its one line (a UserError); other failures pass unchanged. */
export async function runRefusing(host: RemoteHost, script: RemoteScript, where: { volume?: string } = {}, opts: RunOptions = {}): Promise<RunResult> {
  try {
    return await host.run(script, opts);
  } catch (e) {
    throw refusalError(e, { host: host.label, volume: where.volume }) ?? e;
  }
}
