import fs from 'node:fs/promises';
import path from 'node:path';
import { execChecked } from './exec.ts';
import { renderArgv, renderShCommand, shArgv, type RemoteScript } from '../remote/shell.ts';
import type { RemoteHost, RenderedCommand, RestartOptions, RunOptions, RunResult } from './remote-host.ts';
import { restartScript, runRestartCommand } from './restart.ts';

/** The "remote" volume is a directory on this machine (`local:/ABS/ROOT`); volume paths live under ROOT. */
export class LocalHost implements RemoteHost {
  readonly label: string;
  constructor(
    readonly root: string,
    private readonly restartCmd?: string,
  ) {
    this.label = `local:${root}`;
  }

  resolveVolume(volume: string): string {
    return path.join(this.root, volume);
  }

  async run(script: RemoteScript, opts: RunOptions = {}): Promise<RunResult> {
    const r = await execChecked(shArgv(script), { what: script.title, stdin: opts.stdin, signal: opts.signal });
    return { stdout: r.stdout, stderr: r.stderr };
  }

  async put(localFile: string, remotePath: string, _opts: RunOptions = {}): Promise<void> {
    await fs.copyFile(localFile, remotePath);
  }

  async get(remotePath: string, localFile: string, _opts: RunOptions = {}): Promise<void> {
    await fs.copyFile(remotePath, localFile, fs.constants.COPYFILE_EXCL);
  }

  async restart(opts: RestartOptions): Promise<boolean> {
    if (!this.restartCmd) return false;
    await runRestartCommand(this, this.restartCmd, opts);
    return true;
  }

  renderRun(script: RemoteScript): RenderedCommand {
    return { on: this.label, command: renderShCommand(script) };
  }

  renderPut(localFile: string, remotePath: string): RenderedCommand {
    return { on: this.label, command: renderArgv(['cp', '--', localFile, remotePath]) };
  }

  renderRestart(o: Pick<RestartOptions, 'timeoutMs' | 'logFile'>): RenderedCommand[] {
    return this.restartCmd ? [this.renderRun(restartScript(this.restartCmd, o))] : [];
  }

  async close(): Promise<void> {}
}

