import path from 'node:path';
import { remoteScript, type RemoteScript } from './shell.ts';
import type { RemoteLayout } from './layout.ts';
import { refuseSh } from './refusals.ts';
import { withSpaceGuard } from './space-guard.ts';
import { EXTRACTOR_FINISH_WAIT_SECS, USE_EXTRACTION_SH } from './extractor.ts';

/**
 * Every script the runbooks run on the far side. The code is constant; paths and names come in
 * as positional arguments only. Remote requirements: sh, tar, gzip, sha256sum, df, du, mv, find,
 * sort, cat, mkdir, rm, wc (all in coreutils/busybox).
 */

export const REQUIRED_REMOTE_TOOLS = ['tar', 'gzip', 'sha256sum', 'tee', 'mkfifo', 'df', 'du', 'mv', 'find', 'sort', 'cat', 'mkdir', 'rm', 'wc'];

/**
 * Tools present, volume a writable dir, free space, size of live and old dirs. Refuses through its
 * status (lib/remote/refusals.ts): `missing-tools`, `no-volume`, and `volume-full` when
 * `minFreeBytes` is given and the volume has less free.
 */
export function probeScript(l: RemoteLayout, minFreeBytes = 0): RemoteScript {
  return remoteScript('check the remote volume', `
    missing=""
    for t in ${REQUIRED_REMOTE_TOOLS.join(' ')}; do command -v "$t" >/dev/null 2>&1 || missing="$missing $t"; done
    [ -z "$missing" ] || ${refuseSh('missing-tools', { missing: '"$missing"' })}
    echo "missing="
    [ -d "$1" ] || ${refuseSh('no-volume', { volume: '"$1"' })}
    echo "volume=dir"
    if [ -w "$1" ]; then echo "writable=yes"; else echo "writable=no"; fi
    df=$(df -Pk "$1" | tail -n 1)
    echo "df=$df"
    set -- "$@" $df
    free_kb=\${8:-}
    case $free_kb in ''|*[!0-9]*) ;; *) [ "$free_kb" -ge "$4" ] || ${refuseSh('volume-full', { free_mib: '"$((free_kb / 1024))"', need_mib: '"$((($4 + 1023) / 1024))"' })} ;; esac
    if [ -d "$2" ]; then echo "live=$(du -sk "$2")"; else echo "live=absent"; fi
    if [ -d "$3" ]; then echo "old=$(du -sk "$3")"; else echo "old=absent"; fi
  `, [l.volume, l.live, l.old, String(Math.ceil(minFreeBytes / 1024))]);
}

/**
 * Take the deploy lock: mkdir is atomic; the owner record says who and when. A held lock refuses
 * with `lock-held` (the holder's record as detail); a full volume with `volume-full`.
 */
export function lockScript(l: RemoteLayout, ownerJson: string): RemoteScript {
  return withSpaceGuard(remoteScript('take the deploy lock', `
    mkdir -p "$1" || exit 1
    if mkdir "$2" 2>/dev/null; then
      printf '%s\\n' "$3" > "$2/owner.json" || { rm -rf "$2"; exit 1; }
      echo "lock=acquired"
    else
      ${refuseSh('lock-held', { holder: '"$(head -n 1 "$2/owner.json" 2>/dev/null)"' })}
    fi
  `, [l.ferry, l.lock, ownerJson]), l.ferry, ownerJson.length + 8192);
}

/** Release the lock only if this run holds it. */
export function unlockScript(l: RemoteLayout, runId: string): RemoteScript {
  return remoteScript('release the deploy lock', `
    owner=$(cat "$1/owner.json" 2>/dev/null) || exit 0
    case "$owner" in *"\\"runId\\":\\"$2\\""*) rm -rf "$1" ;; esac
  `, [l.lock, runId]);
}

/** Remove the lock whoever holds it (`chroma-ferry unlock`). */
export function forceUnlockScript(l: RemoteLayout): RemoteScript {
  return remoteScript('remove the deploy lock', `
    if [ -d "$1" ]; then cat "$1/owner.json" 2>/dev/null; rm -rf "$1"; echo "lock=removed"; else echo "lock=absent"; fi
  `, [l.lock]);
}

/** How many times the backup reads a live dir that changes under it before it refuses. */
export const BACKUP_READ_ATTEMPTS = 3;

/**
 * tar+gzip of the live dir into the backups dir, from a read proven stable, checked before it gets
 * its final name. Without a live dir (first deploy) it prints `skipped=no-live-dir` and changes
 * nothing. Refuses (lib/remote/refusals.ts): a live dir that is a symbolic link
 * (`live-is-symlink`: a tar of it holds the link, not the data) or holds no chroma.sqlite3
 * (`live-not-chroma`); a live dir that changed during each of `attempts` reads
 * (`backup-unstable`); less free space than the live dir's size (`volume-full`).
 *
 * A read is stable when the type, size, mtime, ctime and inode of every entry under NAME are the
 * same before and after tar read it, tar did not see a file change (its exit 1), and SQLite has
 * no rollback journal or WAL with content (a write in progress). Between attempts it waits 1 s,
 * 2 s, ... The archive must list NAME/chroma.sqlite3, pass `gzip -t`, and is published (with its
 * .sha256) only by renames; its temp files are removed on any failure, and the ones a killed
 * backup of this db dir left are removed first (the caller holds the volume lock).
 * Prints entries=, sha256=, bytes=, attempts= before the renames: a caller that went away
 * (Ctrl-C, a dropped connection) gets no published archive.
 */
export function backupScript(l: RemoteLayout, fileName: string, attempts = BACKUP_READ_ATTEMPTS): RemoteScript {
  const inner = remoteScript('back up the live dir', `
    set -eu
    vol=$1; name=$2; dir=$3; file=$4; attempts=$5
    live="$vol/$name"
    if [ -L "$live" ]; then
      ${refuseSh('live-is-symlink', { path: '"$live"', target: '"$(readlink "$live" 2>/dev/null || :)"' })}
    fi
    [ -d "$live" ] || { echo "skipped=no-live-dir"; exit 0; }
    if [ ! -f "$live/chroma.sqlite3" ] || [ -L "$live/chroma.sqlite3" ]; then
      ${refuseSh('live-not-chroma', { path: '"$live"' })}
    fi
    find "$live" -prune -printf '' 2>/dev/null || ${refuseSh('missing-tools', { missing: '"find-with--printf(GNU-findutils)"' })}
    mkdir -p "$dir"
    tmp="$dir/.$file.partial"
    sumtmp="$dir/.$file.sha256.partial"
    trap 'rm -f "$tmp" "$sumtmp"' EXIT
    trap 'exit 1' HUP INT TERM
    for f in "$dir/.$name-"*.tar.gz.partial "$dir/.$name-"*.tar.gz.sha256.partial; do
      case \${f##*/} in
        ".$name-"[0-9]*T[0-9]*Z.tar.gz.partial|".$name-"[0-9]*T[0-9]*Z.tar.gz.sha256.partial) rm -f "$f" ;;
      esac
    done
    cd "$vol"
    fingerprint() { find "./$name" -printf '%y %s %T@ %C@ %i %p\\n'; }
    busy() {
      for j in chroma.sqlite3-journal chroma.sqlite3-wal; do
        if [ -s "./$name/$j" ]; then echo "$j is not empty (SQLite is writing)"; return 0; fi
      done
      return 1
    }
    n=0
    while :; do
      n=$((n + 1))
      rm -f "$tmp"
      if ! why=$(busy); then
        before=$(fingerprint)
        rc=0
        err=$(tar czf "$tmp" -C "$vol" "$name" 2>&1) || rc=$?
        after=$(fingerprint)
        if [ "$rc" -gt 1 ]; then printf '%s\\n' "$err" >&2; exit "$rc"; fi
        if [ "$rc" -eq 1 ]; then why="tar: a file changed as it was read"
        elif [ "$before" != "$after" ]; then why="sizes or mtimes changed during the read"
        elif ! why=$(busy); then break
        fi
      fi
      if [ "$n" -ge "$attempts" ]; then
        ${refuseSh('backup-unstable', { path: '"$live"', attempts: '"$n"', why: '"$why"' })}
      fi
      sleep "$n"
    done
    gzip -t "$tmp"
    listing=$(tar tzf "$tmp")
    set -- $(printf '%s\\n' "$listing" | {
      count=0; db=no
      while IFS= read -r entry; do count=$((count + 1)); [ "$entry" != "$name/chroma.sqlite3" ] || db=yes; done
      echo "$count $db"
    })
    entries=$1
    [ "$2" = yes ] || { echo "the archive of $live lists no $name/chroma.sqlite3: not kept" >&2; exit 1; }
    sum=$(sha256sum "$tmp"); sum=\${sum%% *}
    bytes=$(wc -c < "$tmp")
    printf '%s  %s\\n' "$sum" "$file" > "$sumtmp"
    # the data id the live dir held (lib/volume/data-id.ts): retention keeps the newest backup of the verified data
    did=""; [ -f "./$name/.ferry-data-id" ] && IFS= read -r did < "./$name/.ferry-data-id" || :
    echo "entries=$entries"
    echo "sha256=$sum"
    echo "bytes=$bytes"
    echo "attempts=$n"
    # The shell that runs this one (the space guard's) is gone: the caller cancelled; publish nothing.
    kill -0 $$ 2>/dev/null || exit 1
    mv "$sumtmp" "$dir/$file.sha256"
    mv "$tmp" "$dir/$file" || { rm -f "$dir/$file.sha256"; exit 1; }
    if [ -n "$did" ]; then printf '%s\\n' "$did" > "$dir/$file.data-id" || :; fi
  `, [l.volume, l.name, l.backups, fileName, String(attempts)]);
  return withSpaceGuard(inner, l.backups, 0, { measure: l.live });
}

/**
 * Names, sizes and sha256 of this db dir's backups (from the .sha256 files written with each), one
 * NUL-terminated record per archive: `backup BYTES SHA256 NAME` (a name may hold spaces).
 */
export function listBackupsScript(l: RemoteLayout): RemoteScript {
  return remoteScript('list remote backups', `
    [ -d "$1" ] || exit 0
    cd "$1" || exit 1
    for f in "$2"-*.tar.gz; do
      [ -f "$f" ] || continue
      sum=$(cat "./$f.sha256" 2>/dev/null) || sum="-"
      printf 'backup %s %s %s\\0' "$(wc -c < "./$f")" "\${sum%% *}" "$f"
    done
  `, [l.backups, l.name]);
}

/** Delete the named backups (names only, inside the backups dir). */
export function pruneBackupsScript(l: RemoteLayout, names: string[]): RemoteScript {
  return remoteScript('prune old backups', `
    set -eu
    dir=$1; shift
    for f in "$@"; do rm -f "$dir/$f" "$dir/$f.sha256" "$dir/$f.data-id"; echo "pruned=$f"; done
  `, [l.backups, ...names]);
}

/**
 * `verified=ID` (the last verified data, from `verifiedFile`), then `id=ID NAME` for every backup
 * whose data id was recorded when it was made (ids hold no spaces).
 */
export function backupDataIdsScript(l: RemoteLayout, verifiedFile: string): RemoteScript {
  return remoteScript('list the data ids of the backups', `
    [ -f "$3" ] && IFS= read -r v < "$3" && printf 'verified=%s\\n' "$v"
    [ -d "$1" ] || exit 0
    cd "$1" || exit 1
    for f in "$2"-*.tar.gz.data-id; do
      [ -f "$f" ] || continue
      IFS= read -r id < "./$f" || continue
      printf 'id=%s %s\\n' "$id" "\${f%.data-id}"
    done
  `, [l.backups, l.name, verifiedFile]);
}

/**
 * One backup archive, checked now: its sha256 computed on the remote, the sha256 recorded when it
 * was made (`-` when the .sha256 file is missing) and its size. The archive is only read.
 */
export function inspectBackupScript(l: RemoteLayout, fileName: string): RemoteScript {
  return remoteScript('checksum a backup archive', `
    set -eu
    f="$1/$2"
    [ -f "$f" ] || { echo "backup $2 not found in $1" >&2; exit 22; }
    recorded=$(cat "$f.sha256" 2>/dev/null) || recorded="-"
    sum=$(sha256sum "$f"); sum=\${sum%% *}
    echo "recorded_sha256=\${recorded%% *}"
    echo "sha256=$sum"
    echo "bytes=$(wc -c < "$f")"
  `, [l.backups, fileName]);
}

/** Remove what an interrupted backupScript left (its partial archive and .sha256); the finished ones are untouched. */
export function removePartialBackupScript(l: RemoteLayout, fileName: string): RemoteScript {
  return remoteScript('remove a partial backup', 'rm -f "$1/.$2.partial" "$1/.$2.sha256.partial"', [l.backups, fileName]);
}

/** Check an uploaded chunk's size and sha256, then give it its final name. */
export function acceptChunkScript(partial: string, final: string, size: number, sha256: string): RemoteScript {
  return remoteScript('verify an uploaded chunk', `
    set -eu
    bytes=$(wc -c < "$1")
    [ "$bytes" -eq "$3" ] || { rm -f "$1"; echo "chunk $(basename "$2"): $bytes bytes on the remote, expected $3 (truncated upload)" >&2; exit 9; }
    sum=$(sha256sum "$1"); sum=\${sum%% *}
    [ "$sum" = "$4" ] || { rm -f "$1"; echo "chunk $(basename "$2"): sha256 mismatch after upload" >&2; exit 9; }
    mv "$1" "$2"
  `, [partial, final, String(size), sha256]);
}

/** Write stdin to the partial file of `accept` (acceptChunkScript), then run that check: one round trip. */
export function receiveAndAcceptScript(accept: RemoteScript): RemoteScript {
  return remoteScript('receive and verify a chunk', `cat > "$1" || exit 1\n${accept.code}`, accept.args);
}

/** Write stdin to a partial file (the stream upload). */
export function receiveStdinScript(partial: string): RemoteScript {
  return remoteScript('receive a chunk on stdin', `cat > "$1"`, [partial]);
}

/**
 * The extraction the extractor did while the chunks arrived (lib/remote/extractor.ts), moved to
 * NAME.new when its status is clean (tar and gzip exit 0, every chunk fed, the stream's sha256
 * the archive's); otherwise, as below, from chunk 0.
 *
 * One pass over the concatenated chunks: extract into NAME.new while hashing them (tee into a
 * fifo read by sha256sum); a sha256 other than the archive's removes NAME.new and fails. Each
 * chunk was already checked on arrival. Prints the sha256 of the extracted regular-file list
 * (find . -type f | LC_ALL=C sort).
 *
 * A full volume refuses with `volume-full` (lib/remote/refusals.ts): before anything is written
 * when it has less free than the chunks' size or `extractedBytes` (when known), and when the
 * extraction fails on a filesystem that is then full (checked before NAME.new is removed; the
 * need reported is what was extracted plus what was free, plus 1 MiB).
 */
export function reassembleScript(l: RemoteLayout, dir: string, archiveSha256: string, chunkNames: string[], extractedBytes = 0): RemoteScript {
  const inner = remoteScript('reassemble and extract', `
    set -eu
    in=$1; want=$2; next=$3; need_kb=$4; shift 4
    cd "$in"
    for c in "$@"; do [ -f "$c" ] || { echo "chunk $c is missing on the remote" >&2; exit 10; }; done
    rm -rf "$next"
    mkdir "$next"
    rm -f .archive.fifo .archive.sha256
    mkfifo .archive.fifo
    sha256sum < .archive.fifo > .archive.sha256 &
    hasher=$!
    status=0
    cat "$@" | tee .archive.fifo | gzip -dc | tar xf - -C "$next" || status=$?
    wait "$hasher" || status=1
    sum=$(cat .archive.sha256 2>/dev/null) || sum=""; sum=\${sum%% *}
    rm -f .archive.fifo .archive.sha256
    if [ "$status" -ne 0 ]; then
      set -- $(df -Pk "$next" 2>/dev/null | tail -n 1); free_kb=\${4:-}
      set -- $(df -Pi "$next" 2>/dev/null | tail -n 1); inodes=\${5:-}
      set -- $(du -sk "$next" 2>/dev/null); used_kb=\${1:-0}
      rm -rf "$next"
      case $free_kb in
        ''|*[!0-9]*) ;;
        *)
          if [ "$free_kb" -lt 1024 ] || [ "$inodes" = 100% ]; then
            more_kb=$((used_kb + free_kb + 1024)); [ "$more_kb" -ge "$need_kb" ] || more_kb=$need_kb
            set -- $(df -Pk "$in" 2>/dev/null | tail -n 1); now_kb=\${4:-0}
            ${refuseSh('volume-full', { free_mib: '"$((now_kb / 1024))"', need_mib: '"$(((more_kb + 1023) / 1024))"' })}
          fi ;;
      esac
      echo "extracting the archive failed on the remote (tar exit $status)" >&2; exit 12
    fi
    [ "$sum" = "$want" ] || { rm -rf "$next"; echo "archive sha256 mismatch on the remote: expected $want, got $sum" >&2; exit 11; }
    cd "$next"
    echo "files=$(find . -type f | wc -l)"
    list=$(find . -type f | LC_ALL=C sort | sha256sum)
    echo "list_sha256=\${list%% *}"
  `, [dir, archiveSha256, l.next, String(Math.ceil(extractedBytes / 1024)), ...chunkNames]);
  const onePass = withSpaceGuard(inner, l.volume, extractedBytes, { measure: dir });
  // First the extraction done while the chunks arrived (lib/remote/extractor.ts), when it is clean.
  return remoteScript('reassemble and extract', `${USE_EXTRACTION_SH}\n${onePass.code}`,
    [dir, archiveSha256, l.next, String(chunkNames.length), String(EXTRACTOR_FINISH_WAIT_SECS), ...onePass.args]);
}

/**
 * After a chunk failed to arrive (its upload or its check): remove its partial file, then refuse
 * with `volume-full` when the volume cannot take `bytes` more (a full disk makes sftp say only
 * "Failure", cp "ENOSPC", cat "write error"). Exits 0 when there is room: the failure was another.
 */
export function discardFailedChunkScript(partial: string, bytes: number): RemoteScript {
  // The partial goes first (the guard checks before its own script runs), then an empty guarded script.
  const check = withSpaceGuard(remoteScript('check for room', ':'), path.posix.dirname(partial), bytes);
  return remoteScript('discard a failed chunk', `rm -f "$1"; shift\n${check.code}`, [partial, ...check.args]);
}

/** NAME.old -> trash, NAME -> NAME.old, NAME.new -> NAME. Renames only; reverts itself if a rename fails. */
export function swapScript(l: RemoteLayout, trash: string): RemoteScript {
  return remoteScript('swap the new dir in', `
    live=$1; old=$2; next=$3; trash=$4
    [ -d "$next" ] || { echo "$next is missing: nothing verified to swap in" >&2; exit 12; }
    mkdir -p "$trash" || exit 1
    moved_old=no; had_live=no
    if [ -e "$old" ]; then mv "$old" "$trash/old" || exit 13; moved_old=yes; fi
    if [ -e "$live" ]; then
      if ! mv "$live" "$old"; then [ $moved_old = yes ] && mv "$trash/old" "$old"; exit 14; fi
      had_live=yes
    fi
    if ! mv "$next" "$live"; then
      [ $had_live = yes ] && mv "$old" "$live"
      [ $moved_old = yes ] && mv "$trash/old" "$old"
      exit 15
    fi
    echo "moved_old=$moved_old"
    echo "had_live=$had_live"
  `, [l.live, l.old, l.next, trash]);
}

/** Undo a swap: the new live dir is kept as NAME.failed-STAMP, the old one goes back. */
export function unswapScript(l: RemoteLayout, trash: string, failedName: string, hadLive: boolean, movedOld: boolean): RemoteScript {
  return remoteScript('put the old dir back', `
    set -eu
    live=$1; old=$2; trash=$3; failed=$4
    if [ -e "$live" ]; then mv "$live" "$failed"; echo "failed=$failed"; fi
    if [ "$5" = yes ]; then mv "$old" "$live"; fi
    if [ "$6" = yes ]; then mv "$trash/old" "$old"; fi
    echo "restored=yes"
  `, [l.live, l.old, trash, `${l.volume}/${failedName}`, hadLive ? 'yes' : 'no', movedOld ? 'yes' : 'no']);
}

/** Remove the deploy's work files on the remote (incoming chunks, the trashed previous .old, a stale NAME.new). */
export function cleanupScript(incoming: string, trash: string): RemoteScript {
  return remoteScript('remove remote work files', `
    rm -rf "$1" "$2"
  `, [incoming, trash]);
}

/**
 * Write a small file atomically (temp file `FILE.tmp.<pid>` + rename in the same dir); the content
 * is an argument. The temp file never stays behind on a failure, and a full volume refuses with
 * `volume-full`. Temp files of FILE left by a writer that was killed (SIGKILL, a lost session)
 * are removed first: a `FILE.tmp.<pid>` whose process no longer runs.
 */
export function writeFileScript(file: string, content: string, title = 'write the runbook state'): RemoteScript {
  return withSpaceGuard(remoteScript(title, `
    set -eu
    case $1 in */*) [ -d "\${1%/*}" ] || mkdir -p "\${1%/*}" ;; esac
    for stale in "$1".tmp.*; do
      pid=\${stale##*.tmp.}
      case $pid in ''|*[!0-9]*) continue ;; esac
      [ "$stale" = "$1.tmp.$pid" ] || continue
      kill -0 "$pid" 2>/dev/null || [ -d "/proc/$pid" ] || rm -f "$stale"
    done
    tmp="$1.tmp.$$"
    trap 'rm -f "$tmp"' EXIT
    trap 'exit 1' HUP INT TERM
    printf '%s\n' "$2" > "$tmp"
    mv "$tmp" "$1"
  `, [file, content]), path.posix.dirname(file), Buffer.byteLength(content) + 8192);
}

/** A small file's content, or nothing when it does not exist. */
export function readFileScript(file: string, title = 'read the runbook state'): RemoteScript {
  return remoteScript(title, `[ -f "$1" ] && cat "$1"; exit 0`, [file]);
}

/** key=value lines of a script's stdout. */
export function parseKv(stdout: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) m.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  return m;
}
