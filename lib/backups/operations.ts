/**
 * Day-2 backup operations on a volume: take a verified backup now (the same archive as deploy's
 * backup step, under the same volume lock), apply retention, and copy a backup to this machine.
 *
 * Archives live in VOLUME/.ferry/backups/NAME-<UTC stamp>.tar.gz with a .sha256 beside each;
 * backupScript reads the live dir until a read is proven stable (bounded retries), writes a
 * partial file, checks it (gzip -t, the listing holds NAME/chroma.sqlite3, sha256, size) and only
 * then gives it its final name. Its refusals (a symlinked or non-Chroma live dir, a live dir that
 * kept changing, a full volume) are one line each (lib/remote/refusals.ts).
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { publishFileNoClobber } from '../engine/atomic-file.ts';
import { findBackup, listBackups } from './catalog.ts';
import { selectBackupsToRemove, type BackupRemoval, type RetentionPolicy } from './retention.ts';
import { UserError } from '../common/errors.ts';
import type { RemoteHost } from '../hosts/remote-host.ts';
import { backupName, backupPath, utcStamp, type RemoteLayout } from '../remote/layout.ts';
import { backupDataIdsScript, backupScript, inspectBackupScript, parseKv, pruneBackupsScript, removePartialBackupScript, unlockScript } from '../remote/scripts.ts';
import { commandHints, type CommandHints } from '../cli/command-hint.ts';
import { parseDataId, verifiedFile } from '../volume/data-id.ts';
import { reconcileBeforeCommand } from '../volume/deploy-swap.ts';
import { reconcile } from '../volume/reconcile.ts';
import { inspectVolume } from '../volume/volume-reconciler.ts';
import { runRefusing } from '../remote/refusals.ts';
import { fileSha256 } from '../archive/file-sha256.ts';
import { checkVolume } from '../volume/check.ts';
import { describeLockHolder, tryVolumeLock, unlockHint } from '../volume/lock.ts';

export interface MadeBackup {
  name: string;
  /** Absolute path on the remote host. */
  path: string;
  bytes: number;
  sha256: string;
  /** Entries the archive lists (files and directories). */
  entries: number;
  /** Reads of the live dir it took to get a stable one (1 on an idle server). */
  attempts: number;
}

/**
 * tar.gz of the live dir into the backups dir, verified on the remote before it gets its name
 * (deploy's backup step and `chroma-ferry backup`). Undefined when there is no live dir.
 * `taken`: names already in use; the stamp moves to the next second rather than overwrite one.
 * `name`: the archive's file name, when the caller chose it (deploy's backup step, also in its plan).
 */
export async function makeRemoteBackup(
  host: RemoteHost,
  layout: RemoteLayout,
  o: { signal?: AbortSignal; taken?: ReadonlySet<string>; onStart?: (name: string) => void; name?: string } = {},
): Promise<MadeBackup | undefined> {
  let name = o.name ?? backupName(layout.name, utcStamp());
  while (o.taken?.has(name)) {
    await new Promise((r) => setTimeout(r, 200));
    name = backupName(layout.name, utcStamp());
  }
  o.onStart?.(name);
  const kv = parseKv((await runRefusing(host, backupScript(layout, name), { volume: layout.volume }, { signal: o.signal })).stdout);
  if (kv.get('skipped')) return undefined;
  return {
    name, path: backupPath(layout, name), bytes: Number(kv.get('bytes')), sha256: kv.get('sha256') ?? '', entries: Number(kv.get('entries')),
    attempts: Number(kv.get('attempts') ?? 1),
  };
}

/**
 * Remove the backups the policy selects: never `justMade`, and never the newest backup of the last
 * verified data (`.ferry/verified-NAME`, the data id each backup recorded); returns what was
 * removed, with the rule.
 */
export async function applyRetention(host: RemoteHost, layout: RemoteLayout, justMade: string, policy: RetentionPolicy, signal?: AbortSignal): Promise<BackupRemoval[]> {
  if (policy.keepCount === undefined && policy.keepDays === undefined) return [];
  const names = (await listBackups(host, layout, signal)).map((b) => b.name);
  let removals = selectBackupsToRemove(names, justMade, policy);
  if (removals.length) {
    const keep = await newestBackupOfVerified(host, layout, names, signal);
    removals = removals.filter((r) => r.name !== keep);
  }
  if (removals.length) await host.run(pruneBackupsScript(layout, removals.map((r) => r.name)), { signal });
  return removals;
}

/** The newest of `newestFirst` whose recorded data id is the last verified data's, if any. */
async function newestBackupOfVerified(host: RemoteHost, layout: RemoteLayout, newestFirst: string[], signal?: AbortSignal): Promise<string | undefined> {
  const out = (await host.run(backupDataIdsScript(layout, verifiedFile(layout)), { signal })).stdout.split('\n');
  const verified = parseDataId(out.find((l) => l.startsWith('verified='))?.slice('verified='.length));
  if (!verified) return undefined;
  const ids = new Map<string, string>();
  for (const line of out) {
    const m = /^id=(\S+) (.+)$/.exec(line);
    if (m && parseDataId(m[1]) === m[1]) ids.set(m[2]!, m[1]!);
  }
  return newestFirst.find((n) => ids.get(n) === verified);
}

export interface BackupNowOptions {
  host: RemoteHost;
  layout: RemoteLayout;
  policy: RetentionPolicy;
  /** `--volume` as the user gave it (for the unlock hint). */
  volumeFlag: string;
  signal?: AbortSignal;
  /** The commands a refusal suggests, from the user's command line. */
  hints?: CommandHints;
}

export interface BackupNowResult {
  target: string;
  backup: MadeBackup;
  removed: BackupRemoval[];
}

/**
 * `chroma-ferry backup`: refuse without a live dir or while another run holds the volume lock;
 * otherwise take the lock, make the backup, apply retention and release the lock, also when
 * anything fails or the run is cancelled (a partial archive is removed).
 */
export async function backupNow(o: BackupNowOptions): Promise<BackupNowResult> {
  const { host, layout, signal } = o;
  const probe = await checkVolume(host, layout, signal);
  // No NAME: refused, unless an interrupted swap took it away (the reconciliation below puts it back).
  if (probe.get('live') === 'absent' && reconcile(await inspectVolume(host, layout, { signal }), { name: layout.name }).action === 'clean') throw noLiveDir(host, layout);
  if (probe.get('writable') !== 'yes') throw new UserError(`volume ${layout.volume} on ${host.label} is not writable by this user: no backup can be written there`);
  const runId = crypto.randomBytes(6).toString('hex');
  const lock = await tryVolumeLock(host, layout, runId, 'backup', signal);
  if (!lock.acquired) {
    throw new UserError(
      `another run holds the deploy lock on ${layout.volume}${describeLockHolder(lock.holder)}: no backup taken; ` +
        `retry when it is done, or if none is running clear it with: ${unlockHint(host, o.volumeFlag)}`,
    );
  }
  let started: string | undefined;
  let made: MadeBackup | undefined;
  let result: BackupNowResult | undefined;
  let failure: unknown;
  try {
    // An interrupted swap is finished or reversed first; a volume in no known state is not backed up.
    await reconcileBeforeCommand(host, layout, { command: 'backup', runId, hints: o.hints ?? commandHints(undefined), signal });
    const taken = new Set((await listBackups(host, layout, signal)).map((b) => b.name));
    made = await makeRemoteBackup(host, layout, { signal, taken, onStart: (name) => { started = name; } });
    if (!made) throw noLiveDir(host, layout);
    const removed = await applyRetention(host, layout, made.name, o.policy, signal);
    result = { target: host.label, backup: made, removed };
  } catch (e) {
    failure = e;
    if (started && !made) await host.run(removePartialBackupScript(layout, started)).catch(() => undefined);
  }
  // Never bound to the signal: after Ctrl-C the lock is still released.
  try {
    await host.run(unlockScript(layout, runId));
  } catch (e) {
    // Whatever else happened, a lock left behind blocks every later deploy: that is what to report.
    failure = new UserError(
      `${made ? `backup ${made.name} was made but ` : ''}the lock ${layout.lock} on ${host.label} could not be released (${e instanceof Error ? e.message : String(e)}); clear it with: ${unlockHint(host, o.volumeFlag)}`,
      1,
    );
  }
  if (failure !== undefined) throw failure;
  return result!;
}

function noLiveDir(host: RemoteHost, layout: RemoteLayout): UserError {
  return new UserError(`no live Chroma dir at ${layout.live} on ${host.label}: nothing to back up; check --volume and --db-dir`);
}

export interface RemoteChecksum {
  sha256: string;
  bytes: number;
  /** False when the archive has no .sha256 recorded at backup time (only the fresh sum is known). */
  recorded: boolean;
}

/**
 * sha256 and size of a backup computed on the remote now, refused when it no longer matches the
 * sha256 recorded when the backup was made (the archive changed or rotted on the volume).
 */
export async function checksumRemoteBackup(host: RemoteHost, layout: RemoteLayout, name: string, signal?: AbortSignal): Promise<RemoteChecksum> {
  const kv = parseKv((await host.run(inspectBackupScript(layout, name), { signal })).stdout);
  const sha256 = kv.get('sha256') ?? '';
  const recorded = kv.get('recorded_sha256') ?? '-';
  const bytes = Number(kv.get('bytes'));
  if (!/^[0-9a-f]{64}$/.test(sha256) || !Number.isInteger(bytes)) throw new Error(`could not checksum ${name} on ${host.label}`);
  if (recorded !== '-' && recorded !== sha256) {
    throw new Error(`backup ${name} on ${host.label} no longer matches the sha256 recorded when it was made (${recorded}, now ${sha256}): the archive is damaged; not copied`);
  }
  return { sha256, bytes, recorded: recorded !== '-' };
}

export interface PullResult {
  name: string;
  /** The local archive. */
  file: string;
  bytes: number;
  sha256: string;
  /** `already-present`: an identical file was there; nothing was downloaded. */
  status: 'downloaded' | 'already-present';
  recordedSha256: boolean;
}

/**
 * `backups pull NAME --to DIR`: the archive downloaded into DIR under a temp name, its size and
 * sha256 compared with the remote's, then published under its own name. An existing file of
 * that name is never replaced: identical is success, different is refused.
 */
export async function pullBackup(o: { host: RemoteHost; layout: RemoteLayout; name: string; toDir: string; signal?: AbortSignal }): Promise<PullResult> {
  const { host, layout, signal } = o;
  const entry = await findBackup(host, layout, o.name, signal);
  const remote = await checksumRemoteBackup(host, layout, entry.name, signal);
  const dir = path.resolve(o.toDir);
  try {
    await fs.mkdir(dir, { recursive: true });
  } catch (e) {
    throw new UserError(`--to ${o.toDir}: cannot create the directory (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  const dest = path.join(dir, entry.name);
  const result = (status: PullResult['status']): PullResult => ({
    name: entry.name, file: dest, bytes: remote.bytes, sha256: remote.sha256, status, recordedSha256: remote.recorded,
  });
  if (await isIdenticalOrRefuse(dest, remote.sha256)) return result('already-present');
  const tmp = path.join(dir, `.${entry.name}.partial-${crypto.randomBytes(4).toString('hex')}`);
  try {
    await host.get(backupPath(layout, entry.name), tmp, { signal });
    const [sha256, st] = await Promise.all([fileSha256(tmp), fs.stat(tmp)]);
    if (st.size !== remote.bytes || sha256 !== remote.sha256) {
      throw new Error(
        `the downloaded ${entry.name} does not match the remote archive (${st.size} bytes, sha256 ${sha256}; ` +
          `expected ${remote.bytes} bytes, sha256 ${remote.sha256}); nothing kept`,
      );
    }
    if (!(await publishFileNoClobber(tmp, dest))) {
      if (await isIdenticalOrRefuse(dest, remote.sha256)) return result('already-present');
    }
  } finally {
    await fs.rm(tmp, { force: true });
  }
  return result('downloaded');
}

/** False when `file` does not exist; true when it has this sha256; a UserError when it differs. */
async function isIdenticalOrRefuse(file: string, sha256: string): Promise<boolean> {
  const st = await fs.stat(file).catch(() => undefined);
  if (!st) return false;
  if (st.isFile() && (await fileSha256(file)) === sha256) return true;
  throw new UserError(`${file} already exists and differs from the remote backup: not overwritten; move it away or pull into another --to`);
}
