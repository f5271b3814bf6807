/**
 * `--restart-cmd` on a `local:` or `ssh://` host, bounded and detached from this process:
 *
 * - The user's command runs as `sh -c CMD` with stdin from /dev/null and stdout and stderr
 *   appended to a log file on the host (`VOLUME/.ferry/restart-RUNID.log`). A server it leaves
 *   running in the background holds no pipe of ours, so the restart returns when the command does.
 * - It runs under coreutils `timeout` of `--restart-timeout` on the host (it ends even when this
 *   side is gone), and this side gives up a little later whatever the host does.
 * - While it runs, the pid of its `timeout` (the leader of its process group) is kept beside the
 *   log. Ctrl-C or the local deadline stops the whole group through that pid: an ssh session that
 *   ends does not end the remote command by itself.
 */
import path from 'node:path';
import { RemoteCommandError } from '../common/errors.ts';
import type { RemoteLayout } from '../remote/layout.ts';
import { redact } from '../report/secrets.ts';
import { remoteScript, type RemoteScript } from '../remote/shell.ts';
import type { RemoteHost, RestartOptions } from './remote-host.ts';
import { STARTED_AS_SH, WAIT_GONE_SH } from '../remote/process-alive.ts';

/** `--restart-timeout` default. */
export const DEFAULT_RESTART_TIMEOUT_MS = 120_000;
/** How much longer than the host's own timeout this side waits before it stops the command itself. */
const LOCAL_GRACE_MS = 10_000;
/** Lines of the restart log shown when the restart fails. */
const LOG_TAIL_LINES = 20;
/** `$0` of the user's command: marks the processes the stop script may signal. */
const MARK = 'chroma-ferry-restart';

/** `VOLUME/.ferry/restart-RUNID.log`: the restart command's output (the undo's restart appends to it). */
export function restartLogFile(layout: RemoteLayout, runId: string): string {
  return path.posix.join(layout.ferry, `restart-${runId}.log`);
}

/** Whole seconds of a `--restart-timeout` (at least 1: `timeout 0` would mean no limit). */
export function restartTimeoutSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/**
 * The user's restart command (their own shell code, as an argument of `sh -c`), detached and
 * bounded. Exits with the command's status (255, ssh's own failure status, as 1); 124 when
 * `timeout` stopped it.
 */
export function restartScript(cmd: string, o: Pick<RestartOptions, 'timeoutMs' | 'logFile'>): RemoteScript {
  return remoteScript('restart command', `
    log=$1 secs=$2 pidfile=$3
    printf '== chroma-ferry restart at %s, limit %ss\\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ 2>/dev/null)" "$secs" >>"$log" || exit 1
    if command -v timeout >/dev/null 2>&1; then
      timeout "$secs" sh -c "$4" ${MARK} </dev/null >>"$log" 2>&1 &
    else
      sh -c "$4" ${MARK} </dev/null >>"$log" 2>&1 &
    fi
    pid=$!
    printf '%s\\n' "$pid" >"$pidfile"
    trap 'kill -TERM "$pid" 2>/dev/null; exit 143' HUP INT TERM
    wait "$pid"
    rc=$?
    rm -f -- "$pidfile"
    [ "$rc" -eq 255 ] && rc=1
    exit "$rc"
  `, [o.logFile, String(restartTimeoutSeconds(o.timeoutMs)), pidFileOf(o.logFile), cmd]);
}

/** Stops a restart command still running (its process group: TERM, then KILL after 5 s). */
export function stopRestartScript(logFile: string): RemoteScript {
  return remoteScript('stop the restart command', `
    [ -f "$1" ] || exit 0
    pid=$(cat -- "$1" 2>/dev/null)
    case $pid in '' | *[!0-9]*) rm -f -- "$1"; exit 0 ;; esac
    ${STARTED_AS_SH}
    started_as "$pid" ${MARK} || { rm -f -- "$1"; exit 0; }
    kill -TERM "$pid" 2>/dev/null
    ${WAIT_GONE_SH}
    wait_gone "$pid" 5 || :
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
    rm -f -- "$1"
    echo "stopped=$pid"
  `, [pidFileOf(logFile)]);
}

export function restartLogTailScript(logFile: string, lines = LOG_TAIL_LINES): RemoteScript {
  return remoteScript('read the restart log', 'tail -n "$2" -- "$1" 2>/dev/null || true', [logFile, String(lines)]);
}

function pidFileOf(logFile: string): string {
  return `${logFile}.pid`;
}

/** The restart failed or did not return in time; `logTail` is the end of its output (redacted). */
export class RestartError extends Error {
  constructor(
    message: string,
    readonly logFile: string,
    readonly logTail: string[],
    readonly timedOut: boolean,
  ) {
    super(message);
    this.name = 'RestartError';
  }
}

/** Runs `cmd` through `restartScript` on `host`; rejects with a RestartError (or the abort of `o.signal`). */
export async function runRestartCommand(host: Pick<RemoteHost, 'run' | 'label'>, cmd: string, o: RestartOptions): Promise<void> {
  const deadline = AbortSignal.timeout(o.timeoutMs + LOCAL_GRACE_MS);
  const signal = o.signal ? AbortSignal.any([o.signal, deadline]) : deadline;
  // Interrupted or past the deadline: stop the command on the host at once. Ending our side is
  // not enough: an ssh session that ends does not end the remote command, and a multiplexed
  // connection keeps its output open until it does.
  const stop = () => host.run(stopRestartScript(o.logFile), { signal: AbortSignal.timeout(20_000) }).catch(() => undefined);
  let stopping: Promise<unknown> | undefined;
  const onAbort = () => { stopping = stop(); };
  signal.addEventListener('abort', onAbort, { once: true });
  const t0 = performance.now();
  try {
    await host.run(restartScript(cmd, o), { signal });
    return;
  } catch (e) {
    if (signal.aborted) {
      await stopping;
      await stop(); // again: a pid file written after the first look
      if (o.signal?.aborted) throw e;
      throw await restartError(host, o, 'timeout');
    }
    if (!(e instanceof RemoteCommandError)) throw e;
    const elapsed = performance.now() - t0;
    // GNU timeout exits 124 when it stopped the command; BusyBox's reports the TERM (143).
    const timedOut = (e.exitCode === 124 || e.exitCode === 143) && elapsed >= o.timeoutMs;
    throw await restartError(host, o, timedOut ? 'timeout' : e.exitCode);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

async function restartError(host: Pick<RemoteHost, 'run' | 'label'>, o: RestartOptions, why: 'timeout' | number): Promise<RestartError> {
  const tail = await readRestartLog(host, o.logFile);
  if (why === 'timeout') {
    return new RestartError(
      `--restart-cmd did not return within ${restartTimeoutSeconds(o.timeoutMs)}s: it must start the server in the background and detach it ` +
        '(e.g. nohup ... >LOG 2>&1 &, or systemctl restart)',
      o.logFile, tail, true,
    );
  }
  return new RestartError(`--restart-cmd failed (exit ${why}) on ${host.label}; its output is in ${o.logFile}`, o.logFile, tail, false);
}

/** The last lines of the restart log, redacted, control characters replaced, long lines cut. */
export async function readRestartLog(host: Pick<RemoteHost, 'run'>, logFile: string): Promise<string[]> {
  try {
    const r = await host.run(restartLogTailScript(logFile), { signal: AbortSignal.timeout(20_000) });
    return r.stdout.split('\n').filter((l) => l.trim() !== '').map((l) => {
      // eslint-disable-next-line no-control-regex
      const clean = redact(l).replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '?');
      return clean.length > 300 ? `${clean.slice(0, 300)}…` : clean;
    });
  } catch {
    return [];
  }
}

/** Summary lines for a failed restart: where its output is, and its last lines. */
export function formatRestartLog(log: { file: string; tail: string[] } | undefined): string[] {
  if (!log) return [];
  if (!log.tail.length) return [`  restart log: ${log.file} (empty)`];
  return [`  restart log (last ${log.tail.length} lines of ${log.file}):`, ...log.tail.map((l) => `    | ${l}`)];
}

/** What a run's restarts (the undo's too) take: `--restart-timeout` (default 120 s) and the run's log in `.ferry/`. */
export function runRestartOptions(restartTimeoutMs: number | undefined, layout: RemoteLayout, runId: string): Pick<RestartOptions, 'timeoutMs' | 'logFile'> {
  return { timeoutMs: restartTimeoutMs ?? DEFAULT_RESTART_TIMEOUT_MS, logFile: restartLogFile(layout, runId) };
}

/** `host.restart`; a restart command that failed leaves its log file and tail in `into.restartLog` (for the summary). */
export async function restartKeepingLog(host: Pick<RemoteHost, 'restart'>, o: RestartOptions, into: { restartLog?: { file: string; tail: string[] } }): Promise<boolean> {
  try {
    return await host.restart(o);
  } catch (e) {
    if (e instanceof RestartError) into.restartLog = { file: e.logFile, tail: e.logTail };
    throw e;
  }
}
