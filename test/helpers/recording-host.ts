/**
 * A RemoteHost that executes nothing: it records every script run (title, args and the command
 * line it renders to) and every upload, and answers each script with the canned key=value output
 * given for its title (a chain of scripts: its parts' answers, in order). A restart runs its script as a `local:` host does, so it is recorded too.
 * Commands render exactly as a `local:` host renders them (LocalHost), so what it records
 * compares with what `--plan` prints for the same host.
 */
import { LocalHost } from '../../lib/hosts/local.ts';
import type { RemoteHost, RenderedCommand, RestartOptions, RunOptions, RunResult } from '../../lib/hosts/remote-host.ts';
import { runRestartCommand } from '../../lib/hosts/restart.ts';
import type { ChainedScript } from '../../lib/remote/chain.ts';
import type { RemoteScript } from '../../lib/remote/shell.ts';

export interface RecordedCommand {
  kind: 'run' | 'put';
  /** The script's title ('put' for an upload). */
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
  private readonly restartCmd?: string;

  constructor(
    private readonly answers: Record<string, CannedAnswer> = {},
    o: { root?: string; restartCmd?: string } = {},
  ) {
    this.restartCmd = o.restartCmd;
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
    return { stdout: this.answerFor(script), stderr: '' };
  }

  /** The canned answer for its title; a chain (lib/remote/chain.ts) without one: its parts' answers, in order. */
  private answerFor(script: RemoteScript): string {
    const a = this.answers[script.title];
    if (a === undefined && 'parts' in script) return (script as ChainedScript).parts.map((p) => this.answerFor(p)).join('');
    return typeof a === 'function' ? a(script) : (a ?? '');
  }

  async put(localFile: string, remotePath: string): Promise<void> {
    this.recorded.push({ kind: 'put', title: 'put', args: [localFile, remotePath], command: this.renderPut(localFile, remotePath).command });
  }

  async get(remotePath: string): Promise<void> {
    throw new Error(`RecordingHost: get ${remotePath} is not recorded (no file to hand back)`);
  }

  /** Runs the restart command as a `local:` host would: through `runRestartCommand`, so its script is recorded. */
  async restart(opts: RestartOptions): Promise<boolean> {
    if (!this.restartCmd) return false;
    await runRestartCommand(this, this.restartCmd, opts);
    return true;
  }

  renderRun(script: RemoteScript): RenderedCommand {
    return this.renderer.renderRun(script);
  }

  renderPut(localFile: string, remotePath: string): RenderedCommand {
    return this.renderer.renderPut(localFile, remotePath);
  }

  renderRestart(o: Pick<RestartOptions, 'timeoutMs' | 'logFile'>): RenderedCommand[] {
    return this.renderer.renderRestart(o);
  }

  async close(): Promise<void> {}
}
