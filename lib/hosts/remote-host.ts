import type { Readable } from 'node:stream';
import type { RemoteScript } from '../remote/shell.ts';

export interface RunOptions {
  /** Bytes for the script's standard input (a stream is piped, a string written whole). */
  stdin?: Readable | string;
  /** Cancels the command (Ctrl-C, SIGTERM, timeouts). */
  signal?: AbortSignal;
}

/** How a restart runs: bounded (`--restart-timeout`), its output in a log file on the host. */
export interface RestartOptions extends RunOptions {
  /** How long the restart may take; past it the command is stopped and the restart fails. */
  timeoutMs: number;
  /** Where the restart command's output goes on the host (`VOLUME/.ferry/restart-RUNID.log`). */
  logFile: string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** How the commands for a host look when a person runs them by hand (`--plan`). */
export interface RenderedCommand {
  /** The host the command runs on: "local" or the target label. */
  on: string;
  /** A command line for a POSIX shell on this machine. */
  command: string;
}

/**
 * The far side of a deploy. Every runbook step is written once against this seam; targets
 * (`local:`, `ssh://`, `fly:`) differ only in how a script reaches the machine.
 */
export interface RemoteHost {
  /** Human label, without secrets: "local:/srv/x", "ssh://deploy@db1:22". */
  readonly label: string;
  /** The absolute path on the host for a volume path given by the user. */
  resolveVolume(volume: string): string;
  /** Run a POSIX sh script; rejects with RemoteCommandError on a non-zero status. */
  run(script: RemoteScript, opts?: RunOptions): Promise<RunResult>;
  /**
   * Puts are coming soon: start what they need ahead (a session waiting for its command) so the
   * first one does not wait for it. Writes nothing on the host. Optional: a no-op where a put
   * costs no session.
   */
  warmUpPuts?(): void;
  /** Upload one local file to an absolute remote path (the parent directory exists). */
  put(localFile: string, remotePath: string, opts?: RunOptions): Promise<void>;
  /** Download one remote file to a local path that does not exist yet (its directory does). */
  get(remotePath: string, localFile: string, opts?: RunOptions): Promise<void>;
  /** Restart the Chroma server after a swap; false when the target has nothing to restart with. */
  restart(opts: RestartOptions): Promise<boolean>;
  /** The commands `run`/`put` would execute, rendered for a person. */
  renderRun(script: RemoteScript): RenderedCommand;
  renderPut(localFile: string, remotePath: string): RenderedCommand;
  /** What `restart` runs, rendered; empty when the target has nothing to restart with. */
  renderRestart(o: Pick<RestartOptions, 'timeoutMs' | 'logFile'>): RenderedCommand[];
  /** Release connections and child processes. */
  close(): Promise<void>;
}
