/**
 * `chroma-ferry unlock`: remove a stale volume lock, then reconcile every db dir of the volume that
 * has a swap journal (the lock is the volume's): an interrupted swap is finished when all its
 * renames ran, else reversed, and what each dir needs next is reported.
 */
import path from 'node:path';
import type { RemoteHost } from '../hosts/remote-host.ts';
import { remoteLayout } from '../remote/layout.ts';
import { forceUnlockScript } from '../remote/scripts.ts';
import { remoteScript } from '../remote/shell.ts';
import { parseDbDir } from '../locations/target.ts';
import type { ReconcileAction } from './reconcile.ts';
import { withReconnect } from './deploy-swap.ts';
import { reconcileVolume } from './volume-reconciler.ts';

export interface UnlockedDir {
  name: string;
  /** What reconciliation did to an interrupted swap. */
  applied?: 'finish-swap' | 'reverse-swap';
  action: ReconcileAction;
  reason: string;
  resolve?: string;
}

export interface UnlockResult {
  lock: string;
  removed: boolean;
  dirs: UnlockedDir[];
}

export async function unlockVolume(host: RemoteHost, volume: string): Promise<UnlockResult> {
  // The lock is the volume's: any db dir's layout names it.
  const base = remoteLayout(volume, 'chroma_db');
  const r = await host.run(forceUnlockScript(base));
  const dirs: UnlockedDir[] = [];
  for (const name of await journaledDbDirs(host, base.ferry)) {
    const res = await withReconnect(() => reconcileVolume(host, remoteLayout(volume, name)));
    dirs.push({ name, applied: res.applied, action: res.after.action, reason: res.after.reason, resolve: res.after.resolve });
  }
  return { lock: base.lock, removed: r.stdout.includes('lock=removed'), dirs };
}

/** The db dirs with a swap journal in `.ferry` (names read from the remote are checked as --db-dir values, else ignored). */
async function journaledDbDirs(host: RemoteHost, ferry: string): Promise<string[]> {
  const out = (await host.run(remoteScript('list the swap journals', `
    cd "$1" 2>/dev/null || exit 0
    for f in swap-journal-*.json; do [ -f "$f" ] && printf '%s\\n' "$f"; done
    exit 0
  `, [ferry]))).stdout;
  const names: string[] = [];
  for (const line of out.split('\n')) {
    const m = /^swap-journal-(.+)\.json$/.exec(line);
    if (!m || path.posix.basename(line) !== line) continue;
    try {
      names.push(parseDbDir(m[1]!));
    } catch {
      // not a name chroma-ferry would have written
    }
  }
  return names;
}

/** One line per db dir for the CLI. */
export function formatUnlocked(d: UnlockedDir): string {
  const did = d.applied ? `${d.applied === 'finish-swap' ? 'finished' : 'reversed'} an interrupted swap; ` : '';
  return `${d.name}: ${did}${d.action}: ${d.reason}${d.resolve ? `; next: ${d.resolve}` : ''}`;
}
