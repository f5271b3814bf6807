/**
 * The deploy's proof, before anything changes, that the dir it replaces (`VOLUME/NAME`) is the
 * dir the server serves: a process on the remote holds `VOLUME/NAME/chroma.sqlite3` open (same
 * device and inode, lib/volume/served-file.ts). A swap of a dir nobody serves would be followed
 * by a verify of the server's other data and a rollback, every time (e.g. the stock Chroma 1.x
 * image serving the volume root because its fly.toml sets only Chroma 0.x variables).
 *
 * Refused (exit 2, one line, nothing changed) when another chroma.sqlite3 is served instead, with
 * its path (as the remote shows it: display only) and the fix; when the volume root itself is
 * served, with how to move the data into a subdirectory (renames cannot swap a volume root).
 * Skipped, saying why, where it cannot be told: /proc unreadable, the server down
 * (`--allow-server-down`: nothing holds the file then), no live dir yet (first deploy), no server
 * (`--no-verify`), a run that does not swap (`--from`/`--only`).
 */
import path from 'node:path';
import { UserError } from '../common/errors.ts';
import type { RemoteHost } from '../hosts/remote-host.ts';
import type { RemoteLayout } from '../remote/layout.ts';
import type { RemoteScript } from '../remote/shell.ts';
import { parseServedFiles, servedFilesScript, type ServedFileProbe } from './served-file.ts';

/** What the check found (the deploy summary's `servedDir`). */
export type ServedDirRecord =
  | { check: 'passed'; file: string; pids: number[] }
  | { check: 'skipped'; file: string; why: string };

/** The probe: who holds VOLUME/NAME/chroma.sqlite3 (1) and VOLUME/chroma.sqlite3 (2) open. */
export function servedDirScript(l: RemoteLayout): RemoteScript {
  return servedFilesScript(servedDirFiles(l));
}

function servedDirFiles(l: RemoteLayout): [string, string] {
  return [path.posix.join(l.live, 'chroma.sqlite3'), path.posix.join(l.volume, 'chroma.sqlite3')];
}

/** What `--plan` says the probe must print. */
export function servedDirExpectation(l: RemoteLayout): string {
  return `held=1:PID (a process holds ${l.live}/chroma.sqlite3 open: the server serves the dir this deploy replaces), or absent=1 (no live dir yet); ` +
    `otherwise stop: held=2:PID means the server serves the volume root ${l.volume}, no held= line that it serves another dir (the sqlite= lines): ` +
    `make it serve ${l.live} (CHROMA_PERSIST_PATH=${l.live}); an unknown= line says why the check cannot be made (go on)`;
}

export interface ServedDirInput {
  host: RemoteHost;
  layout: RemoteLayout;
  /** The server the deploy verifies; none (`--no-verify`): nothing to check. */
  healthUrl?: string;
  /** It did not answer before the deploy (`--allow-server-down`): nothing holds its files then. */
  serverDown: boolean;
  /** This run swaps the live dir (a new run; not `--from`/`--only` past or without the swap). */
  swaps: boolean;
  /** Where the result goes: the record and a warning when skipped for a reason the user should know. */
  summary: { warnings: string[]; servedDir?: ServedDirRecord };
  /** The volume holds a lock or an unsettled swap: their own refusals (after the lock) explain more. */
  needsAttention(): Promise<boolean>;
  signal?: AbortSignal;
  /** The probe's output, when the caller started `servedDirScript` already (alongside its other looks). */
  started?: Promise<{ stdout: string }>;
}

export interface ServedDirCheck {
  /** A refusal deferred because the volume needed attention: checked again once it is settled. */
  afterReconcile(): Promise<void>;
}

/** The check's outcome: a record (and a warning to show), or the refusal. */
type Verdict = { record: ServedDirRecord; warning?: string; refusal?: undefined } | { refusal: UserError };

/**
 * Run the check (before the lock: nothing written). Refuses with a UserError (exit 2), unless the
 * volume needs attention: then the refusal waits for `afterReconcile()` (after the lock and the
 * reconciliation), which checks again.
 */
export async function checkServedDir(i: ServedDirInput): Promise<ServedDirCheck> {
  const [file] = servedDirFiles(i.layout);
  const settled: ServedDirCheck = { afterReconcile: async () => {} };
  if (!i.healthUrl) return record(i, { record: { check: 'skipped', file, why: 'no server to check (--no-verify)' } }, settled);
  if (!i.swaps) return record(i, { record: { check: 'skipped', file, why: 'this run does not swap the live dir (--from/--only)' } }, settled);
  const first = await evaluate(i, i.started);
  if (!first.refusal) return record(i, first, settled);
  if (!(await i.needsAttention())) throw first.refusal;
  return {
    async afterReconcile() {
      const again = await evaluate(i);
      if (again.refusal) throw again.refusal;
      record(i, again, settled);
    },
  };
}

function record(i: ServedDirInput, v: { record: ServedDirRecord; warning?: string }, r: ServedDirCheck): ServedDirCheck {
  i.summary.servedDir = v.record;
  if (v.warning) i.summary.warnings.push(v.warning);
  return r;
}

async function evaluate(i: ServedDirInput, started?: Promise<{ stdout: string }>): Promise<Verdict> {
  const files = servedDirFiles(i.layout);
  const out = await (started ?? i.host.run(servedDirScript(i.layout), { signal: i.signal }));
  const [live, root] = parseServedFiles(out.stdout, files.length) as [ServedFileProbe, ServedFileProbe];
  return judge(i, live, root);
}

/** The verdict on what the probe saw of the live dir's and the volume root's chroma.sqlite3. */
export function judge(i: Pick<ServedDirInput, 'host' | 'layout' | 'serverDown'>, live: ServedFileProbe, root: ServedFileProbe): Verdict {
  const l = i.layout;
  const [file] = servedDirFiles(l);
  if (live.state === 'held') return { record: { check: 'passed', file, pids: live.pids } };
  if (root.state === 'held') return { refusal: new UserError(servesVolumeRoot(l, live.state !== 'absent')) };
  if (live.state === 'absent') return { record: { check: 'skipped', file, why: 'no live dir yet (first deploy): nothing serves it' } };
  // A server that is down holds nothing: whatever /proc can or cannot show, there is nothing to prove.
  if (i.serverDown) {
    const why = `the server is down (--allow-server-down): nothing holds ${file} open`;
    return { record: { check: 'skipped', file, why }, warning: `the check that the server serves ${l.live} was skipped: ${why}` };
  }
  if (live.state === 'unknown') {
    const why = `cannot tell which dir the server serves: ${live.why}`;
    return { record: { check: 'skipped', file, why }, warning: `the check that the server serves ${l.live} was skipped: ${live.why}` };
  }
  return { refusal: new UserError(servesAnotherDir(l, i.host.label, live.heldSqlite)) };
}

const FIX_ENV = (l: RemoteLayout) => `CHROMA_PERSIST_PATH=${l.live} in fly.toml's [env] (or the server's config)`;

function servesVolumeRoot(l: RemoteLayout, liveExists: boolean): string {
  const root = path.posix.join(l.volume, 'chroma.sqlite3');
  return `the server serves the volume root (${root} is open), not ${l.live}, the dir this deploy replaces: ` +
    'a server serving the volume root cannot be swapped by renames; nothing was changed. ' +
    `Move its data into a subdirectory: stop the server, ${liveExists ? `move the unserved ${l.live} aside, ` : ''}mkdir ${l.live}, ` +
    `move ${root} and the collection dirs (the UUID-named ones) into it, set ${FIX_ENV(l)}, start the server, then deploy again`;
}

function servesAnotherDir(l: RemoteLayout, host: string, heldSqlite: string[]): string {
  const file = path.posix.join(l.live, 'chroma.sqlite3');
  // The remote's own paths, shown, never used: one under the volume is the server's.
  const prefix = l.volume.endsWith('/') ? l.volume : `${l.volume}/`;
  const under = heldSqlite.filter((f) => f.startsWith(prefix));
  const others = heldSqlite.filter((f) => !under.includes(f));
  const list = (fs: string[]) => `${fs.slice(0, 3).join(', ')}${fs.length > 3 ? `, and ${fs.length - 3} more` : ''}`;
  let served: string;
  let dbDirHint = '';
  if (under.length) {
    served = `the server serves ${under[0]}${under.length + others.length > 1 ? ` (also open: ${list([...under.slice(1), ...others])})` : ''}`;
    const m = new RegExp(`^${escapeRe(prefix)}([^/]+)/chroma\\.sqlite3$`).exec(under[0]!);
    if (m && !m[1]!.startsWith('.')) dbDirHint = ` (--db-dir ${m[1]})`;
  } else if (others.length) {
    served = `the chroma.sqlite3 files open there are ${list(others)}`;
  } else {
    served = 'no process there holds any chroma.sqlite3 open (does --health-url name a server on another host?)';
  }
  return `no process on ${host} holds ${file} open, so the server does not serve ${l.live}, the dir this deploy replaces: ${served}; nothing was changed. ` +
    `Make the server serve ${l.live}: set ${FIX_ENV(l)} and restart it; or deploy to the dir it serves with --volume and --db-dir${dbDirHint}`;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
