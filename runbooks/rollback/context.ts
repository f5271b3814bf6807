/**
 * What the rollback's steps work on. `RollbackFacts` is what a step's remote scripts are built
 * from (a run learns the source in its preflight, a plan knows it from --backup); `RollbackCtx`
 * adds the run's machinery, `RollbackPlanCtx` the plan's.
 */
import path from 'node:path';
import type { ServedCollection } from '../../lib/chroma/http.ts';
import type { CompensationStack, UndoOutcome } from '../../lib/engine/compensation.ts';
import type { RemoteHost, RestartOptions } from '../../lib/hosts/remote-host.ts';
import { runRestartOptions } from '../../lib/hosts/restart.ts';
import type { OutputMode } from '../../lib/report/output.ts';
import type { PlanCommand } from '../../lib/engine/plan.ts';
import type { RemoteLayout } from '../../lib/remote/layout.ts';
import type { StepReport } from '../../lib/engine/runner.ts';
import type { RunbookStateStore } from '../../lib/engine/state.ts';
import type { AnyStep } from '../../lib/engine/step.ts';
import type { RemoteScript } from '../../lib/remote/shell.ts';
import type { StepPrompter } from '../../lib/engine/step-prompt.ts';
import type { CommandHints } from '../../lib/cli/command-hint.ts';
import { oldBeforeId } from '../../lib/volume/data-id.ts';
import { restoreStagingDir } from '../../lib/remote/rollback-scripts.ts';

export interface RollbackOptions {
  host: RemoteHost;
  volume: string;
  dbDir: string;
  /** undefined: NAME.old; 'latest' or a backup file name: that remote backup. */
  backup?: string;
  healthUrl?: string;
  healthTimeoutMs: number;
  /** `--restart-timeout`: the limit of each restart, the undo's too (default 120 s). */
  restartTimeoutMs?: number;
  output: OutputMode;
  signal: AbortSignal;
  /** `--step`: asked before each step (continue / skip / abort). */
  prompter?: StepPrompter;
  /** The commands refusals suggest, from the user's command line (lib/cli/command-hint.ts). */
  hints?: CommandHints;
}

export interface RollbackSummary {
  ok: boolean;
  runId: string;
  target: string;
  liveDir: string;
  restoredFrom?: string;
  keptAs?: string;
  steps: StepReport[];
  served?: ServedCollection[];
  /** The restart command's output on the host, and its last lines when the restart failed. */
  restartLog?: { file: string; tail: string[] };
  warnings: string[];
  error?: string;
  rollback: UndoOutcome[];
}

/** The options every step's scripts depend on, in a run and in a plan. */
export type RollbackFactOptions = Pick<RollbackOptions, 'host' | 'volume' | 'healthUrl' | 'healthTimeoutMs' | 'restartTimeoutMs'>;

/** What a step's remote scripts are built from (by its run and by its plan, with the same calls). */
export interface RollbackFacts {
  o: RollbackFactOptions;
  runId: string;
  layout: RemoteLayout;
  /** VOLUME/.ferry/restore-<run id>: where a backup is extracted. */
  staging: string;
  lockOwner: string;
  /** The clock for names on the remote (the NAME.failed-<stamp> dir). */
  now(): Date;
  /** The backup file put back (its name, checked); undefined: NAME.old. */
  backupName?: string;
  /** The dir that becomes live: NAME.old, or the extracted backup in the staging dir. */
  source?: string;
}

export interface RollbackCtx extends RollbackFacts {
  o: RollbackOptions;
  stack: CompensationStack;
  summary: RollbackSummary;
  /** Where the replaced live dir goes (NAME.failed-<stamp>, set by the swap). */
  failed?: string;
  hadLive?: boolean;
  restartAttempted: boolean;
  /** The deploy's runbook state, closed by the cleanup (a stopped deploy is over once rolled back). */
  deployState: RunbookStateStore;
  /**
   * `old`: NAME.old back as live; `backup`: a staged backup; `live`: NAME already holds the data
   * live before the last deploy, whose swap was undone (its restart or check failed): restart and
   * check it, never go one version further back.
   */
  mode?: 'old' | 'backup' | 'live';
  /**
   * With mode `live`: NAME holds what an earlier rollback put live and never checked (it stopped
   * after its swap): this rollback finishes it (restart, check, the deployed manifest dropped).
   */
  finishesRollback?: boolean;
  hints: CommandHints;
}

export type RollbackPlanOptions = RollbackFactOptions & Pick<RollbackOptions, 'dbDir' | 'backup'> & {
  /** Where the target came from when --target was not given (e.g. ./fly.toml). */
  targetSource?: string;
};

export interface RollbackPlanCtx extends RollbackFacts {
  o: RollbackPlanOptions;
  source: string;
  cli: string[];
  remote(script: RemoteScript, expect?: string): PlanCommand;
}

export type RollbackStepObject = AnyStep<RollbackCtx, RollbackPlanCtx>;

/** Every restart of this run (the undo's too): bounded by `--restart-timeout`, its output in `.ferry/restart-RUNID.log`. */
export function restartOptions(f: RollbackFacts): Pick<RestartOptions, 'timeoutMs' | 'logFile'> {
  return runRestartOptions(f.o.restartTimeoutMs, f.layout, f.runId);
}

export function stagingDir(layout: RemoteLayout, runId: string): string {
  return restoreStagingDir(layout, runId);
}

/** The data id a rollback stamps where there is none: a staged backup always gets a new one (it holds its old one). */
export function restoredIdOf(f: Pick<RollbackFacts, 'runId'>): string {
  return `restored:${f.runId}`;
}

/** The id given to NAME.old data that has none (from before data ids). */
export function oldDataIdOf(f: Pick<RollbackFacts, 'runId'>): string {
  return oldBeforeId(f.runId);
}

/** The dir a rollback puts back: the extracted backup (it holds NAME/ at its top) or NAME.old. */
export function rollbackSource(f: Pick<RollbackFacts, 'layout' | 'staging' | 'backupName'>): string {
  return f.backupName === undefined ? f.layout.old : path.posix.join(f.staging, f.layout.name);
}
