/**
 * The volume lock (VOLUME/.ferry/lock) that deploy, rollback and backup take before they change
 * the volume: mkdir is atomic, and the owner record says which command of whom holds it.
 */
import os from 'node:os';
import type { RemoteHost } from './hosts/remote-host.ts';
import type { RemoteLayout } from './remote-layout.ts';
import { lockScript, parseKv } from './remote-scripts.ts';

/** The owner record written into the lock (every field may be missing in a foreign or damaged record). */
export interface LockHolder {
  runId?: string;
  command?: string;
  user?: string;
  host?: string;
  pid?: number;
  startedAt?: string;
}

export type LockAttempt = { acquired: true } | { acquired: false; holder: LockHolder };

/** Try once to take the lock for `command` of run `runId`; when it is held, say by whom. */
export async function tryVolumeLock(host: RemoteHost, layout: RemoteLayout, runId: string, command: string, signal?: AbortSignal): Promise<LockAttempt> {
  const owner = JSON.stringify({
    runId, command, user: os.userInfo().username, host: os.hostname(), pid: process.pid, startedAt: new Date().toISOString(),
  });
  const r = await host.run(lockScript(layout, owner), { signal });
  if (parseKv(r.stdout).get('lock') === 'acquired') return { acquired: true };
  return { acquired: false, holder: parseHolder(r.stdout.split('\n').slice(1).join('\n')) };
}

/** " (deploy by ana@laptop, pid 42, since 2026-...)", or "" when the record says nothing. */
export function describeLockHolder(h: LockHolder): string {
  return h.user ? ` (${h.command ?? 'deploy'} by ${h.user}@${h.host}, pid ${h.pid}, since ${h.startedAt})` : '';
}

/** The hint every refusal ends with: how to clear a lock no run holds any more. */
export function unlockHint(host: RemoteHost, volumeFlag: string): string {
  return `chroma-ferry unlock --target ${host.label} --volume ${volumeFlag}`;
}

function parseHolder(text: string): LockHolder {
  try {
    const v = JSON.parse(text.trim()) as unknown;
    return v && typeof v === 'object' ? (v as LockHolder) : {};
  } catch {
    return {};
  }
}
