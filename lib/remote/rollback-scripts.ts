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

/** Put SRC in place as the live dir; the current live dir (if any) is kept as FAILED. Renames only. */
export function restoreSwapScript(l: RemoteLayout, src: string, failedPath: string): RemoteScript {
  return remoteScript('put the previous data back as live', `
    live=$1; src=$2; failed=$3
    [ -d "$src" ] || { echo "$src does not exist: nothing to roll back to" >&2; exit 20; }
    had_live=no
    if [ -e "$live" ]; then mv "$live" "$failed" || exit 21; had_live=yes; fi
    if ! mv "$src" "$live"; then [ $had_live = yes ] && mv "$failed" "$live"; exit 21; fi
    echo "had_live=$had_live"
  `, [l.live, src, failedPath]);
}

/** Undo restoreSwapScript. */
export function undoRestoreSwapScript(l: RemoteLayout, src: string, failedPath: string, hadLive: boolean): RemoteScript {
  return remoteScript('undo the rollback swap', `
    set -eu
    if [ -e "$1" ]; then mv "$1" "$2"; fi
    if [ "$4" = yes ]; then mv "$3" "$1"; fi
  `, [l.live, src, failedPath, hadLive ? 'yes' : 'no']);
}

export function failedDirPath(l: RemoteLayout, stamp: string): string {
  return path.posix.join(l.volume, `${l.name}.failed-${stamp}`);
}
