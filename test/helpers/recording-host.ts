/**
 * A RemoteHost that executes nothing: it records every script run (title, args and the command
 * line it renders to), every upload and every restart, and answers each script with the canned
 * key=value output given for its title. Commands render exactly as a `local:` host renders them
 * (LocalHost), so what it records compares with what `--plan` prints for the same host.
 */
import { LocalHost } from '../../lib/hosts/local.ts';
import type { RemoteHost, RenderedCommand, RunOptions, RunResult } from '../../lib/hosts/remote-host.ts';
import type { RemoteScript } from '../../lib/shell.ts';

export interface RecordedCommand {
  kind: 'run' | 'put' | 'restart';
  /** The script's title ('put' for an upload, 'restart' for the restart). */
  title: string;
  args: readonly string[];
  /** The command line, as the host renders it for a person (and `--plan` prints it). */
  command: string;
}

/** A canned answer: stdout for a script with this title (a function sees the script). */
export type CannedAnswer = string | ((script: RemoteScript) => string);

export class RecordingHost implements RemoteHost {
  readonly recorded: RecordedCommand[] = [];
  private readonly renderer: LocalHost;

  constructor(
    private readonly answers: Record<string, CannedAnswer> = {},
    o: { root?: string; restartCmd?: string } = {},
  ) {
    this.renderer = new LocalHost(o.root ?? '/recording-host', o.restartCmd);
  }

  get label(): string {
    return this.renderer.label;
  }

  resolveVolume(volume: string): string {
    return this.renderer.resolveVolume(volume);
  }

  /** Answer scripts with this title from now on. */
  answer(title: string, a: CannedAnswer): void {
    this.answers[title] = a;
  }

  /** What was recorded since `mark` (an earlier `recorded.length`). */
  since(mark: number): RecordedCommand[] {
    return this.recorded.slice(mark);
  }

  async run(script: RemoteScript, opts: RunOptions = {}): Promise<RunResult> {
    opts.signal?.throwIfAborted();
    this.recorded.push({ kind: 'run', title: script.title, args: script.args, command: this.renderRun(script).command });
    const a = this.answers[script.title];
    return { stdout: typeof a === 'function' ? a(script) : (a ?? ''), stderr: '' };
  }

  async put(localFile: string, remotePath: string): Promise<void> {
    this.recorded.push({ kind: 'put', title: 'put', args: [localFile, remotePath], command: this.renderPut(localFile, remotePath).command });
  }

  async get(remotePath: string): Promise<void> {
    throw new Error(`RecordingHost: get ${remotePath} is not recorded (no file to hand back)`);
  }

  async restart(): Promise<boolean> {
    const rendered = this.renderRestart();
    for (const r of rendered) this.recorded.push({ kind: 'restart', title: 'restart', args: [], command: r.command });
    return rendered.length > 0;
  }

  renderRun(script: RemoteScript): RenderedCommand {
    return this.renderer.renderRun(script);
  }

  renderPut(localFile: string, remotePath: string): RenderedCommand {
    return this.renderer.renderPut(localFile, remotePath);
  }

  renderRestart(): RenderedCommand[] {
    return this.renderer.renderRestart();
  }

  async close(): Promise<void> {}
}
