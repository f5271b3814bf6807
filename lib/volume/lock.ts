/**
 * The volume lock (VOLUME/.ferry/lock) that deploy, rollback and backup take before they change
 * the volume: mkdir is atomic, and the owner record says which command of whom holds it. The lock
 * script refuses a held lock through its status (lib/remote/refusals.ts), so a plan run by hand
 * with `sh -e` stops there too.
 */
import os from 'node:os';
import type { RemoteHost } from '../hosts/remote-host.ts';
import type { RemoteLayout } from '../remote/layout.ts';
import { lockScript } from '../remote/scripts.ts';
import { refusalError, refusalOf } from '../remote/refusals.ts';
import { parseLockHolder, type LockHolder } from './lock-holder.ts';

export { describeLockHolder, type LockHolder } from './lock-holder.ts';

export type LockAttempt = { acquired: true } | { acquired: false; holder: LockHolder };

/**
 * Try once to take the lock for `command` of run `runId`; when it is held, say by whom. Any other
 * refusal (a full volume) is a UserError with its one line.
 */
export async function tryVolumeLock(
  host: RemoteHost, layout: RemoteLayout, runId: string, command: string, signal?: AbortSignal,
  owner = lockOwnerRecord(runId, command),
): Promise<LockAttempt> {
  try {
    await host.run(lockScript(layout, owner), { signal });
    return { acquired: true };
  } catch (e) {
    const refusal = refusalOf(e);
    if (refusal?.reason === 'lock-held') return { acquired: false, holder: parseLockHolder(refusal.details.holder) };
    throw refusalError(e, { host: host.label, volume: layout.volume }) ?? e;
  }
}

/**
 * The owner record a run writes into the lock (JSON): which run and command of whom, since when.
 * `pid` is this process by default; a plan run by hand has none.
 */
export function lockOwnerRecord(runId: string, command: string, o: { pid?: number | null; startedAt?: Date } = {}): string {
  const pid = o.pid === undefined ? process.pid : (o.pid ?? undefined);
  return JSON.stringify({ runId, command, user: os.userInfo().username, host: os.hostname(), pid, startedAt: (o.startedAt ?? new Date()).toISOString() });
}

/** The hint every refusal ends with: how to clear a lock no run holds any more. */
export function unlockHint(host: RemoteHost, volumeFlag: string): string {
  return `chroma-ferry unlock --target ${host.label} --volume ${volumeFlag}`;
}
