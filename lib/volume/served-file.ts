/**
 * Who holds a file open on the remote host: the processes whose open files (`/proc/PID/fd/N`)
 * are the same file (device and inode, followed with `stat -L`) as FILE. This is how the deploy
 * proves that the dir it replaces is the dir a server serves (Chroma keeps `chroma.sqlite3`
 * open), and how a verify proves that a restarted app opened the new file, not the old one.
 *
 * The probe is one constant POSIX sh script (coreutils `stat`, findutils `find`, nothing else: it
 * runs in the stock Chroma image's userland, which has no python3 and no lsof). What it cannot
 * see is `unknown`, never `not-held`: /proc not mounted, /proc hiding other users' processes
 * (hidepid), or processes whose open files this user may not read while none of the readable ones
 * holds FILE.
 */
import type { RemoteHost } from '../hosts/remote-host.ts';
import { remoteScript, type RemoteScript } from '../remote/shell.ts';

export type ServedFile =
  | { state: 'held'; pids: number[] }                       // some process holds FILE open (same device+inode)
  | { state: 'not-held'; heldSqlite: string[] }             // nobody holds it; the chroma.sqlite3 files that ARE held (paths as the remote reports them; display only, never used as paths)
  | { state: 'unknown'; why: string };                      // /proc unreadable etc.

/** What the probe saw: a ServedFile, or FILE does not exist (nobody can hold it). */
export type ServedFileProbe = ServedFile | { state: 'absent'; heldSqlite: string[] };

/**
 * The probe. Prints `key=value` lines: `unknown=WHY` (and nothing else), or `absent=yes` when
 * FILE does not exist, `held=PID` per holder, `denied=N` (processes whose open files could not be
 * read), `user=NAME` and `sqlite=PATH` per open file named chroma.sqlite3 (as /proc shows the link).
 */
export function servedFileScript(file: string): RemoteScript {
  return remoteScript('find the processes that hold the file open', `
    LC_ALL=C; export LC_ALL
    if [ ! -d /proc/self/fd ]; then echo "unknown=/proc is not mounted on the remote (no /proc/self/fd)"; exit 0; fi
    me=$(id -u 2>/dev/null || echo unknown)
    if [ "$me" != 0 ]; then
      while read -r _dev mnt fstype opts _rest; do
        [ "$mnt" = /proc ] && [ "$fstype" = proc ] || continue
        case ",$opts," in
          *,hidepid=0,*|*,hidepid=off,*) ;;
          *,hidepid=*) echo "unknown=/proc is mounted with hidepid: other users' processes are hidden from $(id -un 2>/dev/null || echo "uid $me")"; exit 0 ;;
        esac
      done < /proc/self/mounts
    fi
    want=$(stat -L -c '%d:%i' -- "$1" 2>/dev/null) || { echo "absent=yes"; want=; }
    denied=0
    for d in /proc/[0-9]*/fd; do
      pid=\${d#/proc/}; pid=\${pid%/fd}
      [ "$pid" = "$$" ] && continue
      set -- "$d"/[0-9]*
      if [ ! -e "$1" ] && [ ! -L "$1" ]; then
        # Nothing listed: no open files, the process ended, or its files are not ours to read.
        if [ -d "$d" ] && ! ls -- "$d" >/dev/null 2>&1 && [ -d "$d" ]; then denied=$((denied + 1)); fi
        continue
      fi
      [ -n "$want" ] || continue
      out=$(stat -L -c '%d:%i' -- "$@" 2>&1)
      set -f
      for id in $out; do [ "$id" = "$want" ] && { echo "held=$pid"; break; }; done
      set +f
      case $out in *"Permission denied"*) denied=$((denied + 1)) ;; esac
    done
    echo "denied=$denied"
    echo "user=$(id -un 2>/dev/null || echo "uid $me")"
    find /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 \\( -lname '*/chroma.sqlite3' -o -lname '*/chroma.sqlite3 (deleted)' \\) -printf 'sqlite=%l\\n' 2>/dev/null | sort -u
    exit 0
  `, [file]);
}

/** The probe's output as a ServedFileProbe. */
export function parseServedFile(stdout: string): ServedFileProbe {
  const pids = new Set<number>();
  const sqlite = new Set<string>();
  let absent = false;
  let denied = 0;
  let user = 'this user';
  let sawDenied = false;
  for (const line of stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'unknown') return { state: 'unknown', why: value.trim() || 'the remote could not say' };
    if (key === 'absent') absent = true;
    else if (key === 'held' && /^[0-9]+$/.test(value)) pids.add(Number(value));
    else if (key === 'denied' && /^[0-9]+$/.test(value)) { denied = Number(value); sawDenied = true; }
    else if (key === 'user' && value.trim()) user = value.trim();
    else if (key === 'sqlite' && /\/chroma\.sqlite3( \(deleted\))?$/.test(value)) sqlite.add(value);
  }
  // The probe always ends with denied=N: without it, it did not run to the end.
  if (!sawDenied) return { state: 'unknown', why: 'the probe of /proc on the remote did not finish' };
  const heldSqlite = [...sqlite].sort();
  if (absent) return { state: 'absent', heldSqlite };
  if (pids.size) return { state: 'held', pids: [...pids].sort((a, b) => a - b) };
  if (denied > 0) {
    return { state: 'unknown', why: `${user} may not read the open files of ${denied} process${denied === 1 ? '' : 'es'} in /proc (the server may be one of them); run as root or as the server's user` };
  }
  return { state: 'not-held', heldSqlite };
}

/** Probe FILE on the host: held, not held (absent included), or unknown. */
export async function probeServedFile(host: RemoteHost, file: string, o: { signal?: AbortSignal } = {}): Promise<ServedFileProbe> {
  return parseServedFile((await host.run(servedFileScript(file), { signal: o.signal })).stdout);
}

/** Who holds FILE open on the host. A FILE that does not exist is held by nobody (`not-held`). */
export async function whoHoldsFile(host: RemoteHost, file: string, o: { signal?: AbortSignal } = {}): Promise<ServedFile> {
  const r = await probeServedFile(host, file, o);
  return r.state === 'absent' ? { state: 'not-held', heldSqlite: r.heldSqlite } : r;
}
