/**
 * Who holds a file open on the remote host: the processes whose open files (`/proc/PID/fd/N`)
 * are the same file (device and inode, followed with `stat -L`) as FILE. This is how the deploy
 * proves that the dir it replaces is the dir a server serves (Chroma keeps `chroma.sqlite3`
 * open), and how a verify proves that a restarted app opened the new file, not the old one.
 *
 * The probe is one constant POSIX sh script (coreutils `stat`, findutils `find`, nothing else: it
 * runs in the stock Chroma image's userland, which has no python3 and no lsof). What it cannot
 * see is `unknown`, never `not-held`: /proc not mounted, /proc hiding other users' processes
 * (hidepid), processes whose open files a user other than root may not read, or (as root, whom
 * only a few special processes refuse, e.g. a sandbox's pid 1) such processes while no readable
 * one holds any chroma.sqlite3. A process holding FILE that can be read is always `held`.
 */
import type { RemoteHost } from '../hosts/remote-host.ts';
import { remoteScript, type RemoteScript } from '../remote/shell.ts';

export type ServedFile =
  | { state: 'held'; pids: number[] }                       // some process holds FILE open (same device+inode)
  | { state: 'not-held'; heldSqlite: string[] }             // nobody holds it; the chroma.sqlite3 files that ARE held (paths as the remote reports them; display only, never used as paths)
  | { state: 'unknown'; why: string };                      // /proc unreadable etc.

/**
 * What the probe saw of one file: a ServedFile, or the file does not exist (nobody can hold it;
 * heldSqlite as for not-held, empty when the walk was skipped: every other file was found held).
 */
export type ServedFileProbe = ServedFile | { state: 'absent'; heldSqlite: string[] };

/**
 * The probe of FILES (one walk of /proc for all of them). Prints `key=value` lines:
 * `unknown=WHY` (and nothing else) when /proc cannot tell; `absent=I` for the I-th file (from 1)
 * that does not exist, `held=I:PID` per holder of the I-th file and `walk=holders-found` when
 * every file that exists was found held under its own base name (the walk skipped); else, after
 * the walk, `held=I:PID` per holder of the I-th file, `denied_pid=PID COMM` (the first 5
 * processes whose open files could not be read), `denied=N` (how many), `user=NAME`, `uid=N` and
 * `sqlite=PATH` per open file named chroma.sqlite3 (as /proc shows the link: display only).
 */
export function servedFilesScript(files: readonly string[]): RemoteScript {
  return remoteScript(`find the processes that hold ${files.length === 1 ? 'the file' : 'the files'} open`, `
    LC_ALL=C; export LC_ALL
    if [ ! -d /proc/self/fd ]; then echo "unknown=/proc is not mounted on the remote (no /proc/self/fd)"; exit 0; fi
    me=$(id -u 2>/dev/null || echo unknown)
    user=$(id -un 2>/dev/null || echo "uid $me")
    if [ "$me" != 0 ]; then
      while read -r _dev mnt fstype opts _rest; do
        [ "$mnt" = /proc ] && [ "$fstype" = proc ] || continue
        case ",$opts," in
          *,hidepid=0,*|*,hidepid=off,*) ;;
          *,hidepid=*) echo "unknown=/proc is mounted with hidepid: other users' processes are hidden from $user"; exit 0 ;;
        esac
      done < /proc/self/mounts
    fi
    i=0
    wants=
    absent=
    for f in "$@"; do
      i=$((i + 1))
      if id=$(stat -L -c '%d:%i' -- "$f" 2>/dev/null); then wants="$wants $id=$i"; else echo "absent=$i"; absent=yes; fi
    done
    # The usual case first: the server holds each FILE under a name ending in FILE's own base name.
    # Only those open files are followed (find reads every link, stat only the few that match):
    # a holder found this way is as certain as the walk's. Every FILE that exists held so: done,
    # without the walk (the walk cost ~0.2-0.4 s with a few hundred open files on two busy cores;
    # a FILE that does not exist is absent= either way). Else (a FILE held under another name, by
    # a hard link, or by nobody) the walk below decides.
    if [ -n "$wants" ]; then
      # find's expression from FILES' base names, in the positional parameters (FILES are not
      # needed after this: their ids are in $wants): -lname '*/BASE' -o ...
      n=$#
      quick_ok=yes
      for f in "$@"; do
        b=\${f##*/}
        case $b in ''|*[!A-Za-z0-9._-]*) quick_ok=no ;; esac
        set -- "$@" -o -lname "*/$b"
      done
      shift "$n"
      shift
      if [ "$quick_ok" = yes ]; then
        quick=$(find /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 \\( "$@" \\) -exec sh -c 'exec stat -L -c "%d:%i %n" -- "$@" 2>/dev/null' sh {} + 2>/dev/null)
        found=' '
        old_ifs=$IFS; IFS='
'
        for line in $quick; do
          IFS=$old_ifs
          case $line in *"/proc/$$/fd/"*) continue ;; esac
          id=\${line%% *}; pid=\${line#* /proc/}; pid=\${pid%%/*}
          for w in $wants; do
            [ "$id" = "\${w%=*}" ] || continue
            echo "held=\${w##*=}:$pid"
            found="$found\${w##*=} "
          done
        done
        IFS=$old_ifs
        all=yes
        for w in $wants; do case $found in *" \${w##*=} "*) ;; *) all=no ;; esac; done
        if [ "$all" = yes ]; then
          echo "walk=holders-found"
          exit 0
        fi
      fi
    fi
    denied=0
    deny() { denied=$((denied + 1)); [ "$denied" -gt 5 ] || echo "denied_pid=$1 $(head -c 32 "/proc/$1/comm" 2>/dev/null | head -n 1)"; }
    # Nothing listed: no open files (kernel threads), the process ended, or its files are not ours
    # to read. One ls for all of them (one per process cost ~3 ms each): a dir it cannot list and
    # that is still there is denied.
    empty=
    for d in /proc/[0-9]*/fd; do
      [ "$d" = "/proc/$$/fd" ] && continue
      set -- "$d"/[0-9]*
      if [ ! -e "$1" ] && [ ! -L "$1" ]; then empty="$empty $d"; fi
    done
    if [ -n "$empty" ]; then
      errs=$(ls -- $empty 2>&1 >/dev/null)
      nl='
'
      set -f
      old_ifs=$IFS; IFS=$nl
      for line in $errs; do
        case $line in *" /proc/"[0-9]*"/fd"*|*"'/proc/"[0-9]*"/fd"*) ;; *) continue ;; esac
        pid=\${line#*/proc/}; pid=\${pid%%/*}
        case $pid in ''|*[!0-9]*) continue ;; esac
        [ -d "/proc/$pid/fd" ] && deny "$pid"
      done
      IFS=$old_ifs
      set +f
    fi
    if [ -n "$wants" ]; then
      # Every listed open file, followed, in one pass: "DEV:INO /proc/PID/fd/N" lines, or stat's
      # error naming the file (find batches the names within the argument limit; its own
      # messages about unreadable dirs, counted above, are dropped).
      out=$(find /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 -exec sh -c 'exec stat -L -c "%d:%i %n" -- "$@" 2>&1' sh {} + 2>/dev/null)
      nl='
'
      seen=' '
      set -f
      old_ifs=$IFS; IFS=$nl
      for line in $out; do
        IFS=$old_ifs
        case $line in
          *"/proc/$$/fd/"*) ;;
          *"Permission denied"*)
            pid=\${line#*/proc/}; pid=\${pid%%/*}
            case $seen in *" $pid "*) ;; *) seen="$seen$pid "; deny "$pid" ;; esac ;;
          *:*" /proc/"*)
            id=\${line%% *}; pid=\${line#* /proc/}; pid=\${pid%%/*}
            case "$wants " in *" $id="*) for w in $wants; do [ "$id" = "\${w%=*}" ] && echo "held=\${w##*=}:$pid"; done ;; esac ;;
        esac
      done
      IFS=$old_ifs
      set +f
    fi
    echo "denied=$denied"
    echo "user=$user"
    echo "uid=$me"
    find /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 \\( -lname '*/chroma.sqlite3' -o -lname '*/chroma.sqlite3 (deleted)' \\) -printf 'sqlite=%l\\n' 2>/dev/null | sort -u
    exit 0
  `, files);
}

/** The probe's output: what it saw of each of `count` files, in order. */
export function parseServedFiles(stdout: string, count: number): ServedFileProbe[] {
  const held = Array.from({ length: count }, () => new Set<number>());
  const absent = new Set<number>();
  const sqlite = new Set<string>();
  const deniedPids: string[] = [];
  let denied: number | undefined;
  let user = 'this user';
  let root = false;
  let holdersFound = false;
  for (const line of stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'unknown') {
      const why = printable(value.trim()) || 'the remote could not say';
      return held.map(() => ({ state: 'unknown', why }));
    }
    let m: RegExpExecArray | null;
    if (key === 'absent' && (m = /^([0-9]+)$/.exec(value))) absent.add(Number(m[1]) - 1);
    else if (key === 'held' && (m = /^([0-9]+):([0-9]+)$/.exec(value))) held[Number(m[1]) - 1]?.add(Number(m[2]));
    else if (key === 'denied' && /^[0-9]+$/.test(value)) denied = Number(value);
    else if (key === 'denied_pid' && (m = /^([0-9]+) ?(.*)$/.exec(value))) deniedPids.push(`pid ${m[1]}${m[2] ? ` ${printable(m[2])}` : ''}`);
    else if (key === 'user' && value.trim()) user = printable(value.trim());
    else if (key === 'uid') root = value === '0';
    else if (key === 'walk') holdersFound = value === 'holders-found';
    else if (key === 'sqlite' && /\/chroma\.sqlite3( \(deleted\))?$/.test(value)) sqlite.add(printable(value));
  }
  // The probe always prints denied=N after its walk, or walk=holders-found when every file that
  // exists was found held before it (then nothing else matters; the open chroma.sqlite3 files were
  // not listed): without either, it did not finish.
  if (holdersFound && held.every((p, i) => p.size > 0 || absent.has(i))) {
    return held.map((pids, i) => (absent.has(i) ? { state: 'absent', heldSqlite: [] } : { state: 'held', pids: [...pids].sort((a, b) => a - b) }));
  }
  if (denied === undefined) return held.map(() => ({ state: 'unknown', why: 'the probe of /proc on the remote did not finish' }));
  const heldSqlite = [...sqlite].sort();
  const unreadable = `${user} may not read the open files of ${denied} process${denied === 1 ? '' : 'es'} in /proc` +
    (deniedPids.length ? ` (${deniedPids.join(', ')}${denied > deniedPids.length ? ', ...' : ''})` : '');
  return held.map((pids, i): ServedFileProbe => {
    if (absent.has(i)) return { state: 'absent', heldSqlite };
    if (pids.size) return { state: 'held', pids: [...pids].sort((a, b) => a - b) };
    // Unreadable processes may hold the file. Not held is said only with no process unread, or as
    // root (whom only a few special processes refuse) when a readable process holds another
    // chroma.sqlite3: the server, found serving something else. A user other than root cannot
    // see the server's files unless it runs as that user: unknown.
    if (denied === 0 || (root && heldSqlite.length > 0)) return { state: 'not-held', heldSqlite };
    return {
      state: 'unknown',
      why: root ? `${unreadable}, and no process it can read holds a chroma.sqlite3 open`
        : `${unreadable}; the server may be one of them: run as root or as the server's user`,
    };
  });
}

/** Remote text for display: control characters (a terminal's escapes) replaced by `?`. */
function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

/** Probe FILES on the host in one walk of /proc: held, not held, absent or unknown, in order. */
export async function probeServedFiles(host: RemoteHost, files: readonly string[], o: { signal?: AbortSignal } = {}): Promise<ServedFileProbe[]> {
  return parseServedFiles((await host.run(servedFilesScript(files), { signal: o.signal })).stdout, files.length);
}

/** Who holds FILE open on the host. A FILE that does not exist is held by nobody (`not-held`). */
export async function whoHoldsFile(host: RemoteHost, file: string, o: { signal?: AbortSignal } = {}): Promise<ServedFile> {
  const [r] = await probeServedFiles(host, [file], o);
  return r!.state === 'absent' ? { state: 'not-held', heldSqlite: r!.heldSqlite } : r!;
}
