/**
 * Faults at a known point of a deploy's swap: an `mv` wrapper put first on the PATH of the remote
 * side (the CLI's environment for `local:`, the test sshd's `SetEnv PATH` for `ssh://`). Armed
 * with one rename, matched by the ends of its source and destination paths, it performs that
 * rename and then, once: kills its caller (the swap worker), kills a given pid (the CLI), kills
 * the sshd process of its connection (a dropped ssh session), or kills every process of its ssh
 * session, the detached swap worker included (what logind's KillUserProcesses does when a session
 * ends), optionally with a given pid too, or drops a `fly ssh console` session (its processes on
 * the "machine" killed, the detached worker spared, and `fly` then unable to connect twice; see
 * `flyWrapper`). Every other mv runs unchanged.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';

export type MvFaultAction = 'kill-worker' | 'kill-pid' | 'kill-worker-and-pid' | 'drop-ssh' | 'kill-ssh-session' | 'drop-fly';

export interface MvFault {
  /** The end of the rename's source path, e.g. `/chroma_db` (no spaces). */
  from: string;
  /** The end of its destination path, e.g. `/chroma_db.old` (no spaces). */
  to: string;
  action: MvFaultAction;
  /** For kill-pid (and kill-ssh-session, when given): the process to SIGKILL right after the rename. */
  pid?: number;
}

export interface MvWrapper {
  /** The directory to put first on PATH. */
  binDir: string;
  arm(f: MvFault): Promise<void>;
  disarm(): Promise<void>;
  /** The fault happened (the rename ran and the kill was sent). */
  fired(): Promise<boolean>;
}

/** The wrapper in `root/bin`, its fault file in `root/mv-fault`. */
export async function mvWrapper(root: string): Promise<MvWrapper> {
  const binDir = path.join(root, 'bin');
  const fault = path.join(root, 'mv-fault');
  const real = execFileSync('sh', ['-c', 'command -v mv'], { encoding: 'utf8' }).trim();
  await fs.mkdir(binDir, { recursive: true });
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  await fs.writeFile(path.join(binDir, 'mv'), `#!/bin/sh
f=${q(fault)}
if [ -f "$f" ]; then
  prev=""; last=""
  for a in "$@"; do prev=$last; last=$a; done
  read -r from to action pid < "$f"
  case $prev in *"$from")
    case $last in *"$to")
      rm -f "$f"
      ${q(real)} "$@"; rc=$?
      echo "$rc" > "$f.fired"
      case $action in
        kill-worker) kill -9 "$PPID" ;;
        kill-pid) kill -9 "$pid" ;;
        kill-worker-and-pid) kill -9 "$pid"; kill -9 "$PPID" ;;
        drop-ssh)
          p=$PPID
          while [ "$p" -gt 1 ]; do
            read -r comm < "/proc/$p/comm"
            case $comm in sshd*) kill -9 "$p"; break ;; esac
            read -r st < "/proc/$p/stat"; st=\${st##*) }; set -- $st; p=$2
          done ;;
        kill-ssh-session)
          # The session's root: the sshd process just below the listener (the topmost sshd).
          p=$PPID; below=""; top=""
          while [ "$p" -gt 1 ]; do
            read -r comm < "/proc/$p/comm"
            case $comm in sshd*) below=$top; top=$p ;; esac
            read -r st < "/proc/$p/stat"; st=\${st##*) }; set -- $st; p=$2
          done
          tree=" $below "
          # Every process under it, whatever session or group it moved to.
          more=1
          while [ -n "$below" ] && [ "$more" = 1 ]; do
            more=0
            for d in /proc/[0-9]*; do
              p=\${d#/proc/}
              case $tree in *" $p "*) continue ;; esac
              read -r st 2>/dev/null < "$d/stat" || continue
              st=\${st##*) }; set -- $st
              case $tree in *" $2 "*) tree="$tree$p "; more=1 ;; esac
            done
          done
          [ "$pid" = 0 ] || kill -9 "$pid"
          [ -z "$below" ] || kill -9 $tree ;;
        drop-fly)
          # The session's processes: the sh chain above the detached worker, up to the fly process.
          read -r st < "/proc/$PPID/stat"; st=\${st##*) }; set -- $st; p=$2
          chain=""
          while [ "$p" -gt 1 ]; do
            read -r comm < "/proc/$p/comm"
            case $comm in sh|dash|bash) chain="$p $chain" ;; *) break ;; esac
            read -r st < "/proc/$p/stat"; st=\${st##*) }; set -- $st; p=$2
          done
          echo 2 > "\${f%/*}/fly-down"
          # Outermost first: a shell killed after its child could still print the child's status.
          [ -z "$chain" ] || kill -9 $chain ;;
      esac
      exit "$rc" ;;
    esac ;;
  esac
fi
exec ${q(real)} "$@"
`, { mode: 0o755 });
  return {
    binDir,
    async arm(f) {
      await fs.rm(`${fault}.fired`, { force: true });
      await fs.writeFile(fault, `${f.from} ${f.to} ${f.action} ${f.pid ?? 0}\n`);
    },
    async disarm() {
      await fs.rm(fault, { force: true });
    },
    async fired() {
      return Boolean(await fs.stat(`${fault}.fired`).catch(() => null));
    },
  };
}

/** The renames of a swap of db dir `name`, as wrapper matches. */
export const renames = (name = 'chroma_db') => ({
  liveToOld: { from: `/${name}`, to: `/${name}.old` },
  newToLive: { from: `/${name}.new`, to: `/${name}` },
});

/**
 * A `fly` first on PATH in `root/flybin` (`root`: the mv wrapper's) that forwards to `realFly`,
 * except while `root/fly-down` counts down (the mv wrapper's `drop-fly` sets it to 2): then
 * `fly ssh console` fails as flyctl does when it cannot reach the machine (an `Error:` line,
 * exit 1, nothing run).
 */
export async function flyWrapper(root: string, realFly: string): Promise<string> {
  const binDir = path.join(root, 'flybin');
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  await fs.mkdir(binDir, { recursive: true });
  await fs.writeFile(path.join(binDir, 'fly'), `#!/bin/sh
down=${q(path.join(root, 'fly-down'))}
if [ "$1 $2" = "ssh console" ] && [ -f "$down" ]; then
  read -r n < "$down"
  if [ "$n" -gt 0 ]; then
    echo "$((n - 1))" > "$down"
    echo "Error: error connecting to SSH server: connection reset by peer" >&2
    exit 1
  fi
fi
exec ${q(realFly)} "$@"
`, { mode: 0o755 });
  return binDir;
}
