import path from 'node:path';
import type { RemoteLayout } from './layout.ts';
import { remoteScript, type RemoteScript } from './shell.ts';

/** Scripts of the rollback runbook: constant code, paths as arguments (see lib/remote/shell.ts). */

/** What is on the volume now: live, old, and the backups with their recorded sha256. */
export function rollbackProbeScript(l: RemoteLayout): RemoteScript {
  return remoteScript('inspect the volume for a rollback', `
    if [ -d "$1" ]; then echo "live=yes"; else echo "live=no"; fi
    if [ -d "$2" ]; then echo "old=yes"; else echo "old=no"; fi
  `, [l.live, l.old]);
}

/**
 * Verify a backup archive against its recorded sha256 and gzip integrity, then extract it into a
 * staging dir; the archive holds NAME/ at its top, so the restored dir is STAGING/NAME.
 */
export function stageBackupScript(l: RemoteLayout, backupName: string, staging: string): RemoteScript {
  return remoteScript('verify and extract the backup', `
    set -eu
    f="$1/$2"; staging=$3; name=$4
    [ -f "$f" ] || { echo "backup $2 not found in $1" >&2; exit 22; }
    want=$(cat "$f.sha256" 2>/dev/null) || { echo "backup $2 has no recorded sha256" >&2; exit 23; }
    want=\${want%% *}
    got=$(sha256sum "$f"); got=\${got%% *}
    [ "$got" = "$want" ] || { echo "backup $2: sha256 $got does not match the recorded $want" >&2; exit 24; }
    gzip -t "$f"
    rm -rf "$staging"; mkdir -p "$staging"
    tar xzf "$f" -C "$staging"
    [ -f "$staging/$name/chroma.sqlite3" ] || { echo "backup $2 holds no $name/chroma.sqlite3" >&2; exit 25; }
    echo "files=$(find "$staging/$name" -type f | wc -l)"
  `, [l.backups, backupName, staging, l.name]);
}

/**
 * Where a rollback's swap puts the data it replaces: VOLUME/NAME.failed-<stamp>. The swap itself
 * is the journaled one of lib/volume/swap-journal.ts (rollbackSwapScript).
 */
export function failedDirPath(l: RemoteLayout, stamp: string): string {
  return path.posix.join(l.volume, `${l.name}.failed-${stamp}`);
}

/** VOLUME/.ferry/restore-<run id>: where rollback run `runId` extracts a backup (it holds NAME/ at its top). */
export function restoreStagingDir(l: RemoteLayout, runId: string): string {
  return path.posix.join(l.ferry, `restore-${runId}`);
}
