import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import { redact } from '../report/secrets.ts';

/**
 * Long-lived remote shells that run many commands, one after another, without a new session each.
 *
 * Opening an ssh session costs the far side a fork, the user's login shell and whatever its
 * startup files run (a `.bashrc` that runs `pyenv init` or `nvm` costs ~150 ms per command on our
 * test machine), plus round trips over a slow link. A deploy runs ~25 short commands in a row;
 * each pays it. Here one `sh -s` per session reads command lines from its standard input:
 *
 *     { <the same quoted command line a one-off session would get>
 *     } </dev/null; printf '\n%s %s\n' TAG "$?"; printf '\n%s\n' TAG >&2
 *
 * The command line is the one `renderShCommand` gives (constant sh plus quoted arguments), so what
 * runs is exactly what a one-off session runs; only the transport differs. TAG is random per
 * session and numbered per command; the command never sees it. Its standard input is /dev/null
 * (the session's own input is the command stream), so commands that need input use a one-off
 * session. A reply ends at TAG on both streams: the bytes before `\nTAG` are the command's own,
 * exactly.
 */

export interface SessionReply {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** The session itself ended (connection dropped, transport failed) while a command was running. */
export class SessionLost extends Error {
  constructor(readonly exitCode: number | null, readonly stderr: string) {
    super(`remote session ended${exitCode === null ? '' : ` (exit ${exitCode})`}`);
    this.name = 'SessionLost';
  }
}

const MAX_OUTPUT = 64 * 1024 * 1024;

interface Pending {
  what: string;
  /** The end of stdout: "\nTAG <status>\n" as the last bytes. */
  stdoutMark: RegExp;
  /** The end of stderr: "\nTAG\n". */
  stderrMark: string;
  stdoutEnd?: { at: number; code: number };
  stderrEnd?: number;
  resolve(r: SessionReply): void;
  reject(e: Error): void;
}

/** One remote `sh -s` reading command lines. Runs one command at a time. */
export class ShellSession {
  private readonly child: ChildProcess;
  private readonly nonce = crypto.randomBytes(12).toString('hex');
  private seq = 0;
  private out: Buffer[] = [];
  private outLength = 0;
  private err: Buffer[] = [];
  private errLength = 0;
  private pending?: Pending;
  /** stderr written while no command ran (the transport's own messages). */
  private stray = '';
  private ended = false;
  private readonly closed: Promise<void>;

  constructor(argv: readonly string[]) {
    const [file, ...args] = argv;
    if (!file) throw new Error('empty argv');
    this.child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdin!.on('error', () => {}); // EPIPE once it has gone: reported by 'close'
    this.child.stdout!.on('data', (b: Buffer) => this.onStdout(b));
    this.child.stderr!.on('data', (b: Buffer) => this.onStderr(b));
    this.hold(false);
    this.closed = new Promise((resolve) => {
      this.child.once('error', (e) => { this.end(null, e.message); resolve(); });
      // Its output is read to the end when nothing else holds the pipes; a far-side process left
      // behind may hold them for long, so the end is declared soon after the exit regardless.
      this.child.once('exit', (code, signal) => {
        const status = code ?? (signal ? 255 : null);
        const timer = setTimeout(() => { this.end(status, ''); resolve(); }, 250);
        this.child.once('close', () => { clearTimeout(timer); this.end(status, ''); resolve(); });
      });
    });
  }

  get alive(): boolean {
    return !this.ended;
  }

  get busy(): boolean {
    return this.pending !== undefined;
  }

  /** Run one quoted command line; rejects with SessionLost when the session ends meanwhile. */
  run(commandLine: string, what: string, signal?: AbortSignal): Promise<SessionReply> {
    if (this.ended) return Promise.reject(new SessionLost(null, this.stray));
    if (this.pending) return Promise.reject(new Error('shell session is busy'));
    if (signal?.aborted) return Promise.reject(new Error(`${what}: cancelled`));
    const tag = `ferry-${this.nonce}-${++this.seq}`;
    this.out = []; this.outLength = 0; this.err = []; this.errLength = 0;
    this.hold(true);
    return new Promise<SessionReply>((resolve, reject) => {
      const onAbort = () => {
        // The command may still be running on the far side, as when a one-off ssh is stopped.
        this.pending = undefined;
        this.hold(false);
        this.kill();
        reject(new Error(`${what}: cancelled`));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending = {
        what, stdoutMark: new RegExp(`\\n${tag} (\\d+)\\n$`), stderrMark: `\n${tag}\n`,
        resolve: (r) => { this.hold(false); signal?.removeEventListener('abort', onAbort); resolve(r); },
        reject: (e) => { this.hold(false); signal?.removeEventListener('abort', onAbort); reject(e); },
      };
      this.child.stdin!.write(`{ ${commandLine}\n} </dev/null; printf '\\n%s %s\\n' ${tag} "$?"; printf '\\n%s\\n' ${tag} >&2\n`);
    });
  }

  /** End the shell (EOF on its input); killed when it has not ended within `graceMs`. */
  async close(graceMs = 2000): Promise<void> {
    if (this.ended) return;
    this.child.stdin!.end();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.closed, new Promise<void>((r) => { timer = setTimeout(r, graceMs); })]);
    clearTimeout(timer);
    if (!this.ended) { this.kill(); await this.closed; }
  }

  /**
   * An idle session must not keep this process alive (a run that ends without close() still
   * exits; the shell then reads EOF and ends); a running command must.
   */
  private hold(on: boolean): void {
    for (const h of [this.child, this.child.stdin, this.child.stdout, this.child.stderr] as ({ ref?(): void; unref?(): void } | null)[]) {
      if (on) h?.ref?.(); else h?.unref?.();
    }
  }

  kill(): void {
    try { this.child.kill('SIGKILL'); } catch { /* gone */ }
  }

  private onStdout(b: Buffer): void {
    const p = this.pending;
    if (!p) return; // output of a command whose run was cancelled: dropped
    this.out.push(b);
    this.outLength += b.length;
    if (this.outLength > MAX_OUTPUT) { this.failPending(new Error(`${p.what}: more than 64 MiB of output`)); this.kill(); return; }
    const tail = this.tail(this.out, p.stderrMark.length + 16).toString('latin1'); // the mark: stderr's plus a status
    const m = p.stdoutMark.exec(tail);
    if (m) p.stdoutEnd = { at: this.outLength - (tail.length - m.index), code: Number(m[1]) };
    this.settle();
  }

  private onStderr(b: Buffer): void {
    const p = this.pending;
    if (!p) { this.stray = (this.stray + b.toString('utf8')).slice(-4000); return; }
    this.err.push(b);
    this.errLength += b.length;
    const tail = this.tail(this.err, p.stderrMark.length).toString('latin1');
    if (tail === p.stderrMark) p.stderrEnd = this.errLength - p.stderrMark.length;
    this.settle();
  }

  private settle(): void {
    const p = this.pending;
    if (!p || !p.stdoutEnd || p.stderrEnd === undefined) return;
    this.pending = undefined;
    const stdout = Buffer.concat(this.out, this.outLength).subarray(0, p.stdoutEnd.at).toString('utf8');
    const stderr = Buffer.concat(this.err, this.errLength).subarray(0, p.stderrEnd).toString('utf8');
    this.out = []; this.err = [];
    p.resolve({ stdout, stderr: redact(stderr), exitCode: p.stdoutEnd.code });
  }

  private tail(parts: Buffer[], n: number): Buffer {
    const picked: Buffer[] = [];
    let have = 0;
    for (let i = parts.length - 1; i >= 0 && have < n; i--) { picked.unshift(parts[i]!); have += parts[i]!.length; }
    const all = Buffer.concat(picked);
    return all.subarray(Math.max(0, all.length - n));
  }

  private failPending(e: Error): void {
    const p = this.pending;
    this.pending = undefined;
    p?.reject(e);
  }

  private end(code: number | null, message: string): void {
    if (this.ended) return;
    this.ended = true;
    // Pipes a far-side leftover still holds would keep this process alive.
    for (const stream of [this.child.stdin, this.child.stdout, this.child.stderr]) stream?.destroy();
    const p = this.pending;
    if (!p) return;
    const stderr = Buffer.concat(this.err, this.errLength).toString('utf8') + this.stray + message;
    this.failPending(new SessionLost(code, redact(stderr)));
  }
}

/**
 * Up to `max` sessions, each started on first need and kept for the next command. A command finds
 * an idle one or starts one; with `max` busy, `acquire` gives none and the caller runs the command
 * as a one-off.
 */
export class ShellSessionPool {
  private readonly sessions: ShellSession[] = [];

  constructor(private readonly argv: readonly string[], private readonly max = 4) {}

  private acquire(): ShellSession | undefined {
    for (let i = this.sessions.length - 1; i >= 0; i--) if (!this.sessions[i]!.alive) this.sessions.splice(i, 1);
    const idle = this.sessions.find((s) => !s.busy);
    if (idle) return idle;
    if (this.sessions.length >= this.max) return undefined;
    const s = new ShellSession(this.argv);
    this.sessions.push(s);
    return s;
  }

  /** Run on an idle (or new) session; undefined when all `max` are busy. */
  run(commandLine: string, what: string, signal?: AbortSignal): Promise<SessionReply> | undefined {
    return this.acquire()?.run(commandLine, what, signal);
  }

  /** Drop every session at once (their connection is gone: none may take another command). */
  discardAll(): void {
    for (const s of this.sessions.splice(0)) s.kill();
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.sessions.splice(0).map((s) => s.close()));
  }
}
