import { spawn, type ChildProcess } from 'node:child_process';
import { redact } from '../report/secrets.ts';
import type { SessionReply } from './shell-session.ts';

/**
 * A one-off session started before its input is known: `sftp -b -` spawned ahead, its batch
 * command written when the put comes.
 *
 * Opening a session costs the far side its login (the user's shell and its startup files: ~150 ms
 * and more on a server whose `.bashrc` runs `pyenv init` or `nvm`), and the deploy's first chunk
 * waits for it. A spare session pays that while the preflight still runs. It is the very argv and
 * input a one-off session gets, only spawned earlier: the far side's sftp server starts and waits
 * for its first command, and nothing is written until `send` gives it one. Used once.
 */
export class SpareSession {
  private readonly child: ChildProcess;
  private out: Buffer[] = [];
  private outLength = 0;
  private err: Buffer[] = [];
  private errLength = 0;
  private exitCode?: number;
  private readonly closed: Promise<number>;
  private used = false;

  constructor(argv: readonly string[]) {
    const [file, ...args] = argv;
    if (!file) throw new Error('empty argv');
    this.child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdin!.on('error', () => {}); // EPIPE when it has gone: reported by its exit status
    this.child.stdout!.on('data', (b: Buffer) => { if (this.outLength < MAX_OUTPUT) { this.out.push(b); this.outLength += b.length; } });
    this.child.stderr!.on('data', (b: Buffer) => { if (this.errLength < MAX_OUTPUT) { this.err.push(b); this.errLength += b.length; } });
    this.closed = new Promise((resolve) => {
      this.child.once('error', (e) => { this.err.push(Buffer.from(`\n${e.message}\n`)); this.exitCode = -1; resolve(-1); });
      this.child.once('close', (code, signal) => { this.exitCode = code ?? (signal ? 255 : -1); resolve(this.exitCode); });
    });
    this.hold(false);
  }

  /** Still waiting for its input: spawned, not used, not ended. */
  get ready(): boolean {
    return !this.used && this.exitCode === undefined;
  }

  /** Give the session its whole input (then end of input) and wait for it to end. */
  async send(input: string, what: string, signal?: AbortSignal): Promise<SessionReply> {
    if (this.used) throw new Error('a spare session is used once');
    this.used = true;
    if (signal?.aborted) { this.kill(); throw new Error(`${what}: cancelled`); }
    this.hold(true);
    const onAbort = () => this.kill();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      this.child.stdin!.end(input);
      const exitCode = await this.closed;
      if (signal?.aborted) throw new Error(`${what}: cancelled`);
      return {
        stdout: Buffer.concat(this.out).toString('utf8'),
        stderr: redact(Buffer.concat(this.err).toString('utf8')),
        exitCode,
      };
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Not needed after all: end of input without a command (the session ends on its own), killed past `graceMs`. */
  async close(graceMs = 2000): Promise<void> {
    this.used = true;
    if (this.exitCode !== undefined) return;
    this.child.stdin!.end();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.closed, new Promise<void>((r) => { timer = setTimeout(r, graceMs); })]);
    clearTimeout(timer);
    if (this.exitCode === undefined) { this.kill(); await this.closed; }
  }

  /** A waiting spare must not keep this process alive (without close() it reads EOF when we exit); a used one must. */
  private hold(on: boolean): void {
    for (const h of [this.child, this.child.stdin, this.child.stdout, this.child.stderr] as ({ ref?(): void; unref?(): void } | null)[]) {
      if (on) h?.ref?.(); else h?.unref?.();
    }
  }

  private kill(): void {
    try { this.child.kill('SIGKILL'); } catch { /* gone */ }
  }
}

const MAX_OUTPUT = 4 * 1024 * 1024;
