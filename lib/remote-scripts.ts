import path from 'node:path';
import { remoteScript, type RemoteScript } from './shell.ts';
import type { RemoteLayout } from './remote-layout.ts';
import { refuseSh } from './remote/refusals.ts';
import { withSpaceGuard } from './remote/space-guard.ts';

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

/**
 * tar+gzip of the live dir into the backups dir, checked (gzip -t, listing) before it gets its
 * final name. Without a live dir (first deploy) it prints `skipped=no-live-dir` and changes nothing.
 */
export function backupScript(l: RemoteLayout, fileName: string): RemoteScript {
  return remoteScript('back up the live dir', `
    set -eu
    [ -d "$1/$2" ] || { echo "skipped=no-live-dir"; exit 0; }
    mkdir -p "$3"
    tmp="$3/.$4.partial"
    rm -f "$tmp"
    tar czf "$tmp" -C "$1" "$2"
    gzip -t "$tmp"
    entries=$(tar tzf "$tmp" | wc -l)
    [ "$entries" -gt 0 ] || { echo "backup archive lists no entries" >&2; exit 1; }
    sum=$(sha256sum "$tmp"); sum=\${sum%% *}
    bytes=$(wc -c < "$tmp")
    mv "$tmp" "$3/$4"
    printf '%s  %s\\n' "$sum" "$4" > "$3/$4.sha256"
    # the data id the live dir held (lib/volume/data-id.ts): retention keeps the newest backup of the verified data
    if [ -f "$1/$2/.ferry-data-id" ]; then head -n 1 "$1/$2/.ferry-data-id" > "$3/$4.data-id"; fi
    echo "entries=$entries"
    echo "sha256=$sum"
    echo "bytes=$bytes"
  `, [l.volume, l.name, l.backups, fileName]);
}

/** Names, sizes and sha256 of the backups (from the .sha256 files written with each). */
export function listBackupsScript(l: RemoteLayout): RemoteScript {
  return remoteScript('list remote backups', `
    [ -d "$1" ] || exit 0
    cd "$1"
    for f in *.tar.gz; do
      [ -f "$f" ] || continue
      sum=$(cat "$f.sha256" 2>/dev/null) || sum="-"
      echo "backup $(wc -c < "$f") \${sum%% *} $f"
    done
  `, [l.backups]);
}

/** Delete the named backups (names only, inside the backups dir). */
export function pruneBackupsScript(l: RemoteLayout, names: string[]): RemoteScript {
  return remoteScript('prune old backups', `
    set -eu
    dir=$1; shift
    for f in "$@"; do rm -f "$dir/$f" "$dir/$f.sha256" "$dir/$f.data-id"; echo "pruned=$f"; done
  `, [l.backups, ...names]);
}

/** `id=ID NAME` for every backup whose data id was recorded when it was made (ids hold no spaces). */
export function backupDataIdsScript(l: RemoteLayout): RemoteScript {
  return remoteScript('list the data ids of the backups', `
    [ -d "$1" ] || exit 0
    cd "$1"
    for f in *.tar.gz.data-id; do
      [ -f "$f" ] || continue
      IFS= read -r id < "$f" || continue
      printf 'id=%s %s\\n' "$id" "\${f%.data-id}"
    done
  `, [l.backups]);
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

/** Remove what an interrupted backupScript left (its partial archive); the finished ones are untouched. */
export function removePartialBackupScript(l: RemoteLayout, fileName: string): RemoteScript {
  return remoteScript('remove a partial backup', 'rm -f "$1/.$2.partial"', [l.backups, fileName]);
}

/** Create the incoming dir and report the sha256 of every complete chunk already there. */
export function incomingStateScript(dir: string): RemoteScript {
  return remoteScript('list uploaded chunks', `
    mkdir -p "$1" && cd "$1" || exit 1
    rm -f .*.partial
    for f in chunk-*; do [ -f "$f" ] && sha256sum "$f"; done
    exit 0
  `, [dir]);
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

/** Write stdin to a partial file (the stream upload). */
export function receiveStdinScript(partial: string): RemoteScript {
  return remoteScript('receive a chunk on stdin', `cat > "$1"`, [partial]);
}

export type FetchTool = 'curl' | 'wget';

/**
 * Which HTTP tool the remote has: curl, else a wget whose --help lists `wgetOption` (a GNU wget;
 * `--input-file` to fetch a URL read from stdin, `--body-file` to PUT a file).
 */
export function probeHttpToolScript(wgetOption: '--input-file' | '--body-file'): RemoteScript {
  return remoteScript('check for curl or wget', `
    if command -v curl >/dev/null 2>&1; then echo "tool=curl"
    elif command -v wget >/dev/null 2>&1 && wget --help 2>&1 | grep -q -- "$1"; then echo "tool=wget"
    else echo "tool=none"; fi
  `, [wgetOption]);
}

/**
 * Download one URL into a partial file. The URL arrives on stdin (a curl config line for
 * `curl -K -`, a URL list for `wget -i -`), never as an argument: it is a presigned URL and must
 * not show in `ps` or in any rendered command.
 */
export function fetchUrlScript(partial: string, tool: FetchTool): RemoteScript {
  return remoteScript('fetch a chunk from the bucket', `
    rm -f "$1"
    case "$2" in
      curl) exec curl -fsS --connect-timeout 20 --retry 2 -K - -o "$1" ;;
      wget) exec wget -q -T 60 -t 3 -i - -O "$1" ;;
      *) echo "unknown fetch tool" >&2; exit 2 ;;
    esac
  `, [partial, tool]);
}

/**
 * HTTP PUT of one remote file to a URL that arrives on stdin (a curl config line for `curl -K -`,
 * a URL list for `wget -i -`), never as an argument: it is a presigned URL and must not show in
 * `ps` or in any rendered command.
 */
export function putFileToUrlScript(file: string, tool: FetchTool): RemoteScript {
  return remoteScript('upload a file to the bucket', `
    [ -f "$1" ] || { echo "$1 not found" >&2; exit 22; }
    case "$2" in
      curl) exec curl -fsS --connect-timeout 20 --retry 2 -K - -T "$1" -o /dev/null ;;
      wget) exec wget -q -T 60 -t 3 --method=PUT --body-file="$1" -i - -O /dev/null ;;
      *) echo "unknown upload tool" >&2; exit 2 ;;
    esac
  `, [file, tool]);
}

/**
 * One pass over the concatenated chunks: extract into NAME.new while hashing them (tee into a
 * fifo read by sha256sum); a sha256 other than the archive's removes NAME.new and fails. Each
 * chunk was already checked on arrival. Prints the sha256 of the extracted regular-file list
 * (find . -type f | LC_ALL=C sort).
 */
export function reassembleScript(l: RemoteLayout, dir: string, archiveSha256: string, chunkNames: string[]): RemoteScript {
  return remoteScript('reassemble and extract', `
    set -eu
    in=$1; want=$2; next=$3; shift 3
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
    sum=$(cat .archive.sha256); sum=\${sum%% *}
    rm -f .archive.fifo .archive.sha256
    [ "$status" -eq 0 ] || { rm -rf "$next"; echo "extracting the archive failed on the remote (tar exit $status)" >&2; exit 12; }
    [ "$sum" = "$want" ] || { rm -rf "$next"; echo "archive sha256 mismatch on the remote: expected $want, got $sum" >&2; exit 11; }
    cd "$next"
    echo "files=$(find . -type f | wc -l)"
    list=$(find . -type f | LC_ALL=C sort | sha256sum)
    echo "list_sha256=\${list%% *}"
  `, [dir, archiveSha256, l.next, ...chunkNames]);
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
 * Write a small file atomically (temp file + rename in the same dir); the content is an argument.
 * The temp file never stays behind on a failure, and a full volume refuses with `volume-full`.
 */
export function writeFileScript(file: string, content: string, title = 'write the runbook state'): RemoteScript {
  return withSpaceGuard(remoteScript(title, `
    set -eu
    mkdir -p "$(dirname "$1")"
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
