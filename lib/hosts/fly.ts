/**
 * `fly:APP`: a Fly.io machine reached only through the `fly` binary (flyctl) on PATH, called
 * with argv arrays (never a local shell). How it is called (test/fixtures/fake-fly/README.md):
 *
 * - scripts: `fly ssh console -a APP --machine ID -q -C "sh -c '<code>' ferry 'arg' ..."`. flyctl
 *   splits -C into words (no shell), so the command is the quoted `sh -c` line of `renderShCommand`.
 *   It does not pass the remote exit status through: the script ends with `echo "__ferry_rc=$?"`,
 *   parsed and stripped from stdout. Never `--pty`; stdin is piped (no PTY with -C).
 * - uploads: `fly sftp put` (refuses to overwrite: a stale file is removed first).
 * - restart: `fly machine restart`, `fly machine wait --state started`, then the machine's checks.
 * - health: `fly proxy 0:PORT` as a child process, ended by pid in close().
 * - snapshot: `fly volumes snapshots create` of the volume attached to the machine, polled until created.
 */
import readline from 'node:readline';
import type { ResultPromise } from 'execa';
import { RemoteCommandError, UserError } from '../common/errors.ts';
import { execArgv, loadExeca, type ExecResult } from './exec.ts';
import { redact, registerSecret } from '../report/secrets.ts';
import { remoteScript, renderArgv, renderShCommand, type RemoteScript } from '../remote/shell.ts';
import type { RemoteHost, RenderedCommand, RestartOptions, RunOptions, RunResult } from './remote-host.ts';
import { restartTimeoutSeconds } from './restart.ts';

export const MIN_FLYCTL_VERSION = '0.4.80';
export const FLY_MACHINE_RE = /^[a-z0-9]{1,40}$/;
const STATUS_MARKER = '__ferry_rc=';

export interface FlyHostOptions {
  app: string;
  /** `--machine ID`; without it the app's single started machine. */
  machine?: string;
  /** fly.toml `[http_service] internal_port`: the Chroma port inside the machine (default 8000). */
  internalPort?: number;
  /** How long `restart()` waits for the machine's checks to pass after `fly machine wait` (default 5 min, never past `--restart-timeout`). */
  checksTimeoutMs?: number;
  /** How long `createSnapshot()` waits for the snapshot to be `created` (default 10 min). */
  snapshotTimeoutMs?: number;
  /** The flyctl binary (default `fly`, looked up on PATH). */
  bin?: string;
}

interface FlyMachine {
  id: string;
  state: string;
  region?: string;
  checks?: { name: string; status: string }[];
}
interface FlyVolume {
  id: string;
  name?: string;
  attached_machine_id?: string | null;
}
interface FlySnapshot {
  id: string;
  status: string;
}

export class FlyHost implements RemoteHost {
  readonly label: string;
  private readonly bin: string;
  private machinePromise?: Promise<string>;
  private machineId?: string;
  private proxy?: { child: ResultPromise; url: string };

  constructor(private readonly o: FlyHostOptions) {
    this.label = `fly:${o.app}`;
    this.bin = o.bin ?? 'fly';
    registerSecret(process.env.FLY_ACCESS_TOKEN);
    registerSecret(process.env.FLY_API_TOKEN);
  }

  resolveVolume(volume: string): string {
    return volume;
  }

  /**
   * Checks before anything changes (UserError, exit 2): flyctl >= 0.4.80, a token in
   * FLY_ACCESS_TOKEN or FLY_API_TOKEN, `fly auth whoami` works, the machine is known and started.
   */
  async preflight(signal?: AbortSignal): Promise<void> {
    let v: ExecResult;
    try {
      v = await this.fly(['version'], 'fly version', { signal });
    } catch {
      throw new UserError('cannot run `fly` (flyctl): install it (https://fly.io/docs/flyctl/install/) and put it on PATH');
    }
    const version = parseFlyVersion(v.stdout);
    if (v.exitCode !== 0 || !version) throw new UserError(`cannot read the flyctl version from \`fly version\`: ${firstLine(v.stdout + v.stderr)}`);
    if (compareVersions(version, MIN_FLYCTL_VERSION) < 0) {
      throw new UserError(
        `flyctl ${version} is too old: chroma-ferry needs ${MIN_FLYCTL_VERSION} or newer (older versions can drop the end of \`fly ssh console\` output); run \`fly version upgrade\``,
      );
    }
    const token = process.env.FLY_ACCESS_TOKEN || process.env.FLY_API_TOKEN;
    if (!token) {
      throw new UserError(`no Fly.io token: set FLY_ACCESS_TOKEN or FLY_API_TOKEN (e.g. from \`fly tokens create deploy -a ${this.o.app}\`)`);
    }
    registerSecret(token);
    const who = await this.fly(['auth', 'whoami', '--json'], 'fly auth whoami', { signal });
    if (who.exitCode !== 0) {
      throw new UserError(`fly auth whoami failed: ${lastLine(who.stderr) || `exit ${who.exitCode}`}; check FLY_ACCESS_TOKEN / FLY_API_TOKEN`);
    }
    await this.machine(signal);
  }

  /** The machine every command goes to: `--machine`, else the app's single started machine. */
  machine(signal?: AbortSignal): Promise<string> {
    this.machinePromise ??= this.resolveMachine(signal).then((id) => (this.machineId = id));
    return this.machinePromise;
  }

  private async resolveMachine(signal?: AbortSignal): Promise<string> {
    let machines: FlyMachine[];
    try {
      machines = await this.listMachines(signal);
    } catch (e) {
      throw new UserError(`cannot list the machines of ${this.label}: ${e instanceof Error ? e.message : String(e)}`);
    }
    const describe = (m: FlyMachine) => `${m.id} (${m.state}${m.region ? `, ${m.region}` : ''})`;
    if (this.o.machine) {
      const m = machines.find((x) => x.id === this.o.machine);
      if (!m) throw new UserError(`--machine ${this.o.machine}: no such machine in ${this.label}; it has ${machines.map(describe).join(', ') || 'none'}`);
      if (m.state !== 'started') {
        throw new UserError(`--machine ${m.id} is ${m.state}, not started; start it with \`fly machine start ${m.id} -a ${this.o.app}\``);
      }
      return m.id;
    }
    const started = machines.filter((m) => m.state === 'started');
    if (started.length === 0) {
      throw new UserError(`${this.label} has no started machine (${machines.map(describe).join(', ') || 'none'}); start one or pass --machine`);
    }
    if (started.length > 1) {
      throw new UserError(`${this.label} has ${started.length} started machines: ${started.map(describe).join(', ')}; pass --machine ID (the one whose volume holds Chroma)`);
    }
    return started[0]!.id;
  }

  private async listMachines(signal?: AbortSignal): Promise<FlyMachine[]> {
    return (await this.flyJson<FlyMachine[] | null>(['machines', 'list', '-a', this.o.app, '--json'], 'fly machines list', signal)) ?? [];
  }

  /** argv of `fly ssh console` running the script (with the status marker appended). */
  async sshArgv(script: RemoteScript, signal?: AbortSignal): Promise<string[]> {
    return this.sshArgvFor(withStatusMarker(script), await this.machine(signal));
  }

  private sshArgvFor(wrapped: RemoteScript, machine: string): string[] {
    return [this.bin, 'ssh', 'console', '-a', this.o.app, '--machine', machine, '-q', '-C', renderShCommand(wrapped)];
  }

  async run(script: RemoteScript, opts: RunOptions = {}): Promise<RunResult> {
    const argv = await this.sshArgv(script, opts.signal);
    const r = await execArgv(argv, { what: `${script.title} on ${this.label}`, stdin: opts.stdin, signal: opts.signal });
    const parsed = splitStatusMarker(r.stdout);
    if (!parsed) {
      // No status marker: the session ended before the script did (a dropped connection, flyctl
      // unable to reach the machine, the session's processes killed), so whether and how far it
      // ran is unknown. flyctl exits 1 for all of these (and for a failing command: its exit code
      // tells nothing), so this is a transport error (-1, as ssh's 255): once a swap has started,
      // the runbook reconnects and asks the volume.
      throw new RemoteCommandError(
        `${script.title} on ${this.label} (fly ssh console ended before the script reported its status; flyctl exit ${r.exitCode})`,
        -1,
        r.stderr,
      );
    }
    if (parsed.status !== 0) throw new RemoteCommandError(`${script.title} on ${this.label}`, parsed.status, r.stderr);
    return { stdout: parsed.stdout, stderr: r.stderr };
  }

  async put(localFile: string, remotePath: string, opts: RunOptions = {}): Promise<void> {
    // `fly sftp put` refuses to overwrite: remove what an interrupted run left.
    await this.run(remoteScript('remove a stale upload', 'rm -f -- "$1"', [remotePath]), { signal: opts.signal });
    const machine = await this.machine(opts.signal);
    const argv = [this.bin, 'sftp', 'put', '-a', this.o.app, '--machine', machine, localFile, remotePath];
    const r = await execArgv(argv, { what: `fly sftp put to ${this.label}`, signal: opts.signal });
    if (r.exitCode !== 0) throw new RemoteCommandError(`fly sftp put to ${this.label}`, r.exitCode, r.stderr);
  }

  /** `fly sftp get` into a local path that does not exist yet. */
  async get(remotePath: string, localFile: string, opts: RunOptions = {}): Promise<void> {
    const machine = await this.machine(opts.signal);
    const argv = [this.bin, 'sftp', 'get', '-a', this.o.app, '--machine', machine, remotePath, localFile];
    const r = await execArgv(argv, { what: `fly sftp get from ${this.label}`, signal: opts.signal });
    if (r.exitCode !== 0) throw new RemoteCommandError(`fly sftp get from ${this.label}`, r.exitCode, r.stderr);
  }

  /**
   * Always a machine restart on fly: (`--restart-cmd` is refused for fly: targets): restart, wait
   * for `started`, then the machine's checks, all within `opts.timeoutMs` (`--restart-timeout`).
   */
  async restart(opts: RestartOptions): Promise<boolean> {
    const secs = restartTimeoutSeconds(opts.timeoutMs);
    const deadline = AbortSignal.timeout(opts.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline;
    const overdue = () => new Error(`the machine restart of ${this.label} did not finish within ${secs}s (--restart-timeout)`);
    try {
      const id = await this.machine(signal);
      await this.flyChecked(['machine', 'restart', id, '-a', this.o.app], `fly machine restart ${id}`, signal);
      await this.flyChecked(['machine', 'wait', id, '-a', this.o.app, '--state', 'started', '-w', `${secs}s`], `fly machine wait ${id}`, signal);
      const timeoutMs = Math.min(this.o.checksTimeoutMs ?? 5 * 60_000, opts.timeoutMs);
      const end = Date.now() + timeoutMs;
      for (let delay = 500; ; delay = Math.min(delay * 2, 5000)) {
        const m = (await this.listMachines(signal)).find((x) => x.id === id);
        const checks = m?.checks ?? [];
        if (m?.state === 'started' && checks.every((c) => c.status === 'passing')) return true;
        if (Date.now() + delay > end) {
          const state = m ? `${m.state}; checks ${checks.map((c) => `${c.name}=${c.status}`).join(', ') || 'none'}` : 'gone';
          throw new Error(`machine ${id} of ${this.label} not healthy ${Math.round(timeoutMs / 1000)} s after the restart (${state})`);
        }
        await sleep(delay, signal);
      }
    } catch (e) {
      if (deadline.aborted && !opts.signal?.aborted) throw overdue();
      throw e;
    }
  }

  /**
   * A local URL of the app's Chroma server: `fly proxy 0:PORT -a APP` as a child process (it
   * listens on 127.0.0.1), started once, ended in close().
   */
  async healthUrl(): Promise<string> {
    if (this.proxy) return this.proxy.url;
    const port = this.o.internalPort ?? 8000;
    // Not tied to the run's abort signal and in its own process group: a rollback after Ctrl-C
    // still checks the old data through it. close() ends it by pid.
    const { execa } = await loadExeca();
    const child = execa(this.bin, ['proxy', `0:${port}`, '-a', this.o.app], {
      stdin: 'ignore', stdout: 'pipe', stderr: 'pipe', reject: false, buffer: false, detached: true,
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
    const lines = readline.createInterface({ input: child.stdout! });
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`fly proxy did not report a local port within 60 s: ${lastLine(stderr)}`)), 60_000);
      const fail = (e: Error) => { clearTimeout(timer); child.kill('SIGTERM'); reject(e); };
      lines.on('line', (line) => {
        const m = /Proxying localhost:(\d+) to remote/.exec(line);
        if (m) { clearTimeout(timer); resolve(`http://127.0.0.1:${m[1]}`); }
      });
      void child.then((r) => fail(new UserError(
        `fly proxy ${port} to ${this.label} ended (exit ${r.exitCode ?? r.signal}): ${redact(lastLine(stderr)) || 'no output'}; pass --health-url instead`,
      )));
    });
    this.proxy = { child, url };
    return url;
  }

  /** Snapshot of the volume attached to the machine; resolves with the snapshot id once `created`. */
  async createSnapshot(signal?: AbortSignal): Promise<string> {
    const id = await this.machine(signal);
    const volumes = (await this.flyJson<FlyVolume[] | null>(['volumes', 'list', '-a', this.o.app, '--json'], 'fly volumes list', signal)) ?? [];
    const vol = volumes.find((v) => v.attached_machine_id === id);
    if (!vol) throw new Error(`no Fly volume of ${this.label} is attached to machine ${id}: cannot take a snapshot`);
    const list = async () => (await this.flyJson<FlySnapshot[] | null>(['volumes', 'snapshots', 'list', vol.id, '--json'], 'fly volumes snapshots list', signal)) ?? [];
    const before = new Set((await list()).map((s) => s.id));
    await this.flyChecked(['volumes', 'snapshots', 'create', vol.id], `fly volumes snapshots create ${vol.id}`, signal);
    const timeoutMs = this.o.snapshotTimeoutMs ?? 10 * 60_000;
    const end = Date.now() + timeoutMs;
    for (let delay = 1000; ; delay = Math.min(delay * 2, 10_000)) {
      const fresh = (await list()).filter((s) => !before.has(s.id));
      const done = fresh.find((s) => s.status === 'created');
      if (done) return done.id;
      const failed = fresh.find((s) => /fail|error/i.test(s.status));
      if (failed) throw new Error(`snapshot ${failed.id} of volume ${vol.id} ${failed.status}`);
      if (Date.now() + delay > end) {
        throw new Error(`snapshot of volume ${vol.id} not created after ${Math.round(timeoutMs / 1000)} s (${fresh.map((s) => `${s.id}=${s.status}`).join(', ') || 'not listed'})`);
      }
      await sleep(delay, signal);
    }
  }

  renderRun(script: RemoteScript): RenderedCommand {
    return { on: 'local', command: renderArgv(this.sshArgvFor(withStatusMarker(script), this.renderedMachine())) };
  }

  renderPut(localFile: string, remotePath: string): RenderedCommand {
    const argv = [this.bin, 'sftp', 'put', '-a', this.o.app, '--machine', this.renderedMachine(), localFile, remotePath];
    return { on: 'local', command: renderArgv(argv) };
  }

  /** The machine restart; the machine's checks are then watched with `fly machine status`. */
  renderRestart(o: Pick<RestartOptions, 'timeoutMs' | 'logFile'>): RenderedCommand[] {
    const id = this.renderedMachine();
    return [
      { on: 'local', command: renderArgv([this.bin, 'machine', 'restart', id, '-a', this.o.app]) },
      { on: 'local', command: renderArgv([this.bin, 'machine', 'wait', id, '-a', this.o.app, '--state', 'started', '-w', `${restartTimeoutSeconds(o.timeoutMs)}s`]) },
    ];
  }

  private renderedMachine(): string {
    return this.machineId ?? this.o.machine ?? 'MACHINE_ID';
  }

  async close(): Promise<void> {
    const p = this.proxy;
    this.proxy = undefined;
    if (!p?.child.pid) return;
    // Its own process group (detached): a `fly` that is a wrapper script takes its children along.
    const pid = p.child.pid;
    const kill = (sig: NodeJS.Signals) => {
      try { process.kill(-pid, sig); } catch { try { process.kill(pid, sig); } catch { /* already gone */ } }
    };
    kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([
      p.child.then(() => true, () => true),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), 5000); }),
    ]);
    clearTimeout(timer);
    if (!ended) kill('SIGKILL');
    p.child.stdout?.destroy();
    p.child.stderr?.destroy();
  }

  private fly(args: string[], what: string, o: { signal?: AbortSignal } = {}): Promise<ExecResult> {
    return execArgv([this.bin, ...args], { what, signal: o.signal });
  }

  private async flyChecked(args: string[], what: string, signal?: AbortSignal): Promise<ExecResult> {
    const r = await this.fly(args, what, { signal });
    if (r.exitCode !== 0) throw new RemoteCommandError(what, r.exitCode, r.stderr);
    return r;
  }

  private async flyJson<T>(args: string[], what: string, signal?: AbortSignal): Promise<T> {
    const r = await this.flyChecked(args, what, signal);
    try {
      return JSON.parse(r.stdout) as T;
    } catch {
      throw new Error(`${what}: output is not JSON: ${firstLine(r.stdout)}`);
    }
  }
}

/**
 * The script run in a subshell, then its status printed as the last stdout line (flyctl does not
 * pass the remote exit status through). The positional arguments and stdin reach it unchanged.
 */
export function withStatusMarker(script: RemoteScript): RemoteScript {
  return { title: script.title, code: `(\n${script.code}\n)\necho "${STATUS_MARKER}$?"`, args: script.args };
}

/** The script's own stdout and its status, or undefined when the marker is missing (output cut off). */
export function splitStatusMarker(stdout: string): { stdout: string; status: number } | undefined {
  const m = new RegExp(`${STATUS_MARKER}(\\d+)\\r?\\n?$`).exec(stdout);
  if (!m) return undefined;
  return { stdout: stdout.slice(0, m.index), status: Number(m[1]) };
}

/** `fly v0.4.87 linux/amd64 Commit: ...` -> "0.4.87". */
export function parseFlyVersion(text: string): string | undefined {
  return /\bv?(\d+\.\d+\.\d+)\b/.exec(text)?.[1];
}

export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0] ?? '';
}

function lastLine(text: string): string {
  return text.trim().split('\n').filter(Boolean).pop() ?? '';
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); reject(signal.reason); }, { once: true });
  });
}

/**
 * The fly-only parts of a deploy, called by the CLI after the host is built: flyctl preflight,
 * the health URL through `fly proxy` when `--health-url` is not given (and not `--no-verify`), and `--snapshot`.
 * For other targets `--snapshot` is refused and the health URL is returned as given.
 */
export async function prepareFlyDeploy(
  host: RemoteHost,
  o: { healthUrl?: string; snapshot?: boolean; signal?: AbortSignal; noVerify?: boolean },
): Promise<{ healthUrl?: string; snapshot?: () => Promise<string> }> {
  if (!(host instanceof FlyHost)) {
    if (o.snapshot) throw new UserError('--snapshot applies to fly: targets only (a Fly volume snapshot)');
    return { healthUrl: o.healthUrl };
  }
  await host.preflight(o.signal);
  // `--no-verify`: nothing checks the server, so no proxy to it.
  const healthUrl = o.healthUrl ?? (o.noVerify ? undefined : await host.healthUrl());
  return { healthUrl, snapshot: o.snapshot ? () => host.createSnapshot(o.signal) : undefined };
}
