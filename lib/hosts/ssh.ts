import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HostUnreachable, RemoteCommandError } from '../common/errors.ts';
import { execArgv } from './exec.ts';
import { redact } from '../report/secrets.ts';
import { renderArgv, renderShCommand, type RemoteScript } from '../remote/shell.ts';
import type { RemoteHost, RenderedCommand, RestartOptions, RunOptions, RunResult } from './remote-host.ts';
import { restartScript, runRestartCommand } from './restart.ts';
import { SessionLost, ShellSessionPool, type SessionReply } from './shell-session.ts';
import { SpareSession } from './spare-session.ts';

export interface SshHostOptions {
  user: string;
  host: string;
  port: number;
  keyFile?: string;
  /** Extra `-o` options, e.g. "StrictHostKeyChecking=accept-new". */
  sshOptions?: string[];
  restartCmd?: string;
}

/**
 * OpenSSH `ssh` for scripts and `sftp` for uploads, in BatchMode (never a password prompt).
 * One multiplexed connection (ControlMaster) serves every command of a run. Commands without
 * standard input run in a few long-lived remote shells (lib/hosts/shell-session.ts) instead of a
 * new session each: the far side's login costs are paid once per shell, not once per command.
 */
export class SshHost implements RemoteHost {
  readonly label: string;
  private readonly controlDir: string;
  /** The shared connection being opened (openConnection): every command waits for it. */
  private connecting?: Promise<{ ok: boolean; stderr: string }>;
  private readonly shells: ShellSessionPool;
  /** An sftp session started ahead of the next put (warmUpPuts). */
  private spare?: Promise<SpareSession | undefined>;
  private closed = false;

  constructor(private readonly o: SshHostOptions) {
    this.label = `ssh://${o.user}@${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}`;
    this.controlDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-ssh-'));
    this.shells = new ShellSessionPool(['ssh', ...this.commonOptions(), '-p', String(o.port), '--', this.destination(), 'sh -s']);
  }

  resolveVolume(volume: string): string {
    return volume;
  }

  private commonOptions(): string[] {
    const opts = [
      '-o', 'BatchMode=yes',
      '-o', 'ConnectTimeout=15',
      '-o', 'ServerAliveInterval=15',
      '-o', 'ControlMaster=auto',
      '-o', `ControlPath=${path.join(this.controlDir, 'cm')}`,
      '-o', 'ControlPersist=120',
    ];
    if (this.o.keyFile) opts.push('-i', this.o.keyFile, '-o', 'IdentitiesOnly=yes');
    for (const opt of this.o.sshOptions ?? []) opts.push('-o', opt);
    return opts;
  }

  private destination(): string {
    return `${this.o.user}@${this.o.host}`;
  }

  /** argv of `ssh` running the script; the remote login shell receives one quoted command line. */
  sshArgv(script: RemoteScript): string[] {
    return ['ssh', ...this.commonOptions(), '-p', String(this.o.port), '--', this.destination(), renderShCommand(script)];
  }

  async run(script: RemoteScript, opts: RunOptions = {}): Promise<RunResult> {
    const r = await this.overSharedConnection(() => opts.stdin === undefined
      ? this.runInShell(script, opts.signal)
      : execArgv(this.sshArgv(script), { what: script.title, stdin: opts.stdin, signal: opts.signal }));
    if (r.exitCode === 255) throw unreachable(this.label, r.stderr);
    if (r.exitCode !== 0) {
      throw new RemoteCommandError(`${script.title} on ${this.label}`, r.exitCode, r.stderr);
    }
    return { stdout: r.stdout, stderr: r.stderr };
  }

  async put(localFile: string, remotePath: string, opts: RunOptions = {}): Promise<void> {
    await this.sftp(`put ${sftpQuote(localFile)} ${sftpQuote(remotePath)}`, `sftp put ${path.basename(localFile)}`, opts);
  }

  async get(remotePath: string, localFile: string, opts: RunOptions = {}): Promise<void> {
    await this.sftp(`get ${sftpQuote(remotePath)} ${sftpQuote(localFile)}`, `sftp get ${path.posix.basename(remotePath)}`, opts);
  }

  /** On an idle long-lived shell (a one-off session when all are busy); a lost shell is a lost connection. */
  private async runInShell(script: RemoteScript, signal?: AbortSignal): Promise<SessionReply> {
    const reply = this.shells.run(renderShCommand(script), script.title, signal);
    if (!reply) return execArgv(this.sshArgv(script), { what: script.title, signal });
    try {
      return await reply;
    } catch (e) {
      if (!(e instanceof SessionLost)) throw e;
      this.shells.discardAll(); // they share the connection that just went away
      return { stdout: '', stderr: e.stderr, exitCode: 255 };
    }
  }

  /**
   * A put is coming (the deploy's upload, once the preflight has passed): start its sftp session
   * now, over the shared connection, so that the put does not wait for the far side's login. The
   * session only waits for its batch command; nothing is written on the remote until a put or get
   * gives it one. Each put that takes the spare starts the next one.
   */
  warmUpPuts(): void {
    // Only after the first command opened the connection (or is opening it): a session started
    // before would race it to be the connection's master.
    if (this.spare || !this.connecting || this.closed) return;
    const argv = this.sftpArgv();
    this.spare = this.connecting.then((c) => (this.closed || !c.ok ? undefined : new SpareSession(argv)));
  }

  private sftpArgv(): string[] {
    return ['sftp', ...this.commonOptions(), '-P', String(this.o.port), '-b', '-', '--', this.destination()];
  }

  /** One sftp batch command (put/get) over the shared connection: on the spare session when one waits. */
  private async sftp(command: string, what: string, opts: RunOptions): Promise<void> {
    // Taken before any await: puts started together must not take the same one.
    const taken = this.spare;
    this.spare = undefined;
    if (taken) this.warmUpPuts();
    const spare = taken && await taken;
    const r = spare?.ready
      ? await spare.send(`${command}\n`, what, opts.signal)
      : await this.overSharedConnection(() => execArgv(this.sftpArgv(), { what, stdin: `${command}\n`, signal: opts.signal }));
    if (r.exitCode !== 0) {
      if (/Connection refused|Could not resolve|timed out|Permission denied \(/.test(r.stderr)) throw unreachable(this.label, r.stderr);
      throw new RemoteCommandError(`${what} on ${this.label}`, r.exitCode, r.stderr);
    }
  }

  /**
   * Commands started together (the preflight's looks) share one connection, opened first on its
   * own (openConnection); each starts once it is up. Otherwise each would find no master yet and
   * log in on its own; waiting for the first command's end instead made every look wait for that
   * command (in the preflight, python3 reading the live dir's migrations). A connection that
   * cannot be opened is HostUnreachable for the commands that waited for it, with ssh's words.
   */
  private async overSharedConnection<T>(run: () => Promise<T>): Promise<T> {
    this.connecting ??= this.openConnection();
    const opened = await this.connecting;
    if (!opened.ok) {
      this.connecting = undefined; // a later command tries again
      throw unreachable(this.label, opened.stderr);
    }
    return run();
  }

  /**
   * `ssh -N -f` (ControlMaster=auto, ControlPersist): authenticates, leaves the connection's master
   * in the background and exits; no session is opened (no login shell, no command). Its messages go
   * to a file in the control dir, not a pipe: the master it leaves behind would hold a pipe open.
   */
  private openConnection(): Promise<{ ok: boolean; stderr: string }> {
    const errFile = path.join(this.controlDir, 'connect.err');
    const fd = fs.openSync(errFile, 'w');
    return new Promise((resolve) => {
      const done = (ok: boolean, extra = '') => {
        let stderr = extra;
        try { stderr = fs.readFileSync(errFile, 'utf8') + extra; } catch { /* the host was closed meanwhile */ }
        resolve({ ok, stderr: redact(stderr) });
      };
      try {
        const child = spawn('ssh', [...this.commonOptions(), '-N', '-f', '-p', String(this.o.port), '--', this.destination()], { stdio: ['ignore', 'ignore', fd] });
        child.once('error', (e) => done(false, e.message));
        child.once('exit', (code) => done(code === 0));
      } finally {
        fs.closeSync(fd);
      }
    });
  }

  async restart(opts: RestartOptions): Promise<boolean> {
    if (!this.o.restartCmd) return false;
    await runRestartCommand(this, this.o.restartCmd, opts);
    return true;
  }

  renderRun(script: RemoteScript): RenderedCommand {
    const argv = ['ssh', '-p', String(this.o.port), ...(this.o.keyFile ? ['-i', this.o.keyFile] : []),
      ...(this.o.sshOptions ?? []).flatMap((o) => ['-o', o]), '--', this.destination(), renderShCommand(script)];
    return { on: 'local', command: renderArgv(argv) };
  }

  renderRestart(o: Pick<RestartOptions, 'timeoutMs' | 'logFile'>): RenderedCommand[] {
    return this.o.restartCmd ? [this.renderRun(restartScript(this.o.restartCmd, o))] : [];
  }

  renderPut(localFile: string, remotePath: string): RenderedCommand {
    const batch = `put ${sftpQuote(localFile)} ${sftpQuote(remotePath)}`;
    const argv = ['sftp', '-P', String(this.o.port), ...(this.o.keyFile ? ['-i', this.o.keyFile] : []),
      ...(this.o.sshOptions ?? []).flatMap((o) => ['-o', o]), '-b', '-', '--', this.destination()];
    return { on: 'local', command: `printf '%s\\n' ${renderArgv([batch])} | ${renderArgv(argv)}` };
  }

  async close(): Promise<void> {
    this.closed = true;
    const spare = this.spare;
    this.spare = undefined;
    await Promise.all([this.shells.closeAll(), spare?.then((s) => s?.close())]);
    // The master ends; its socket's dir can go once it has. Spawned plainly: a run whose commands
    // all went through the long-lived shells has not loaded execa, and loading it here took ~0.15 s.
    await new Promise<void>((resolve) => {
      const child = spawn('ssh', [...this.commonOptions(), '-p', String(this.o.port), '-O', 'exit', '--', this.destination()], { stdio: 'ignore' });
      child.once('error', () => resolve());
      child.once('exit', () => resolve());
    });
    fs.rmSync(this.controlDir, { recursive: true, force: true });
  }
}

/**
 * sftp batch-file quoting: double quotes, with backslash before `\` and `"`. Glob characters need
 * no escaping: inside quotes sftp already treats `*?[` literally (escaping them would add a literal
 * backslash). A line break would end the batch command, so it is refused.
 */
export function sftpQuote(p: string): string {
  if (/[\r\n]/.test(p)) throw new Error(`sftp cannot transfer a path containing a line break: ${JSON.stringify(p)}`);
  return `"${p.replace(/([\\"])/g, '\\$1')}"`;
}

function unreachable(label: string, stderr: string): HostUnreachable {
  const line = stderr.trim().split('\n').filter(Boolean).pop() ?? 'no answer';
  return new HostUnreachable(`cannot reach ${label} over ssh: ${line}; check --target, --ssh-key and that sshd is running`);
}

