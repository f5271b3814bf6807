/**
 * What the deploy's steps work on. `DeployFacts` is what a step's remote scripts are built from:
 * a run fills it in step by step, a plan knows all of it up front (packing the source in memory).
 * `DeployCtx` adds the run's own machinery (compensation stack, summary, state store), and
 * `DeployPlanCtx` the plan's (the CLI's argv, the local work files it names).
 */
import type { PackAhead } from '../../lib/archive/pack-ahead.ts';
import type { ChunkShipper } from '../../lib/transfer/chunk-shipper.ts';
import type { TransferDisplay } from '../../lib/report/transfer-progress.ts';
import type { ServedCollection } from '../../lib/chroma/http.ts';
import type { ChromaVersionCheck } from '../../lib/chroma/version-check.ts';
import type { AppServingReport } from '../../lib/serving/app-health.ts';
import type { ServingCheck } from '../../lib/serving/verify-serving.ts';
import type { SqliteManifest } from '../../lib/chroma/sqlite-manifest.ts';
import type { SourceSqlite } from '../../lib/chroma/source-sqlite.ts';
import type { CompensationStack, UndoOutcome } from '../../lib/engine/compensation.ts';
import { UserError } from '../../lib/common/errors.ts';
import type { RemoteHost, RestartOptions } from '../../lib/hosts/remote-host.ts';
import { runRestartOptions } from '../../lib/hosts/restart.ts';
import type { OutputMode } from '../../lib/report/output.ts';
import type { PlanCommand } from '../../lib/engine/plan.ts';
import { incomingDir, trashDir, type RemoteLayout } from '../../lib/remote/layout.ts';
import type { StepReport } from '../../lib/engine/runner.ts';
import type { RunbookState, RunbookStateStore } from '../../lib/engine/state.ts';
import type { RemoteScript } from '../../lib/remote/shell.ts';
import type { AnyStep } from '../../lib/engine/step.ts';
import type { StepPrompter } from '../../lib/engine/step-prompt.ts';
import type { ChunkUploader } from '../../lib/transfer/chunk-uploader.ts';
import type { CommandHints } from '../../lib/cli/command-hint.ts';
import { archiveDataId } from '../../lib/volume/data-id.ts';
import type { SwapIds } from '../../lib/volume/swap-journal.ts';
import type { ServedDirRecord } from '../../lib/volume/served-dir-check.ts';

export const DEPLOY_STEPS = ['preflight', 'manifest', 'backup', 'package', 'upload', 'reassemble', 'swap', 'restart', 'verify', 'cleanup'] as const;
export type DeployStep = (typeof DEPLOY_STEPS)[number];

export interface DeployOptions {
  source: string;
  host: RemoteHost;
  /** How chunks travel (sftp by default); the runbook verifies them the same way for every method. */
  uploader: ChunkUploader;
  volume: string;
  dbDir: string;
  chunkSize: number;
  healthUrl?: string;
  /** `--app-health-url`: an app that embeds Chroma (instead of healthUrl): verified by lib/serving/app-health.ts. */
  appHealthUrl?: string;
  healthTimeoutMs: number;
  /** `--restart-timeout`: the limit of each restart, the undo's too (default 120 s). */
  restartTimeoutMs?: number;
  /** `--allow-server-down`: deploy although the server at the health URL does not answer before the deploy. */
  allowServerDown?: boolean;
  /** `--no-verify`: deploy without a health URL; the run ends "deployed, not verified". */
  noVerify?: boolean;
  keepBackups: number;
  uploadConcurrency: number;
  /** `--work-dir`: the work root; the run works in WORK/chroma-ferry-<run id> (default: under the system temp dir). */
  workDir?: string;
  output: OutputMode;
  signal: AbortSignal;
  /** Takes a snapshot of the whole volume (fly: `--snapshot`) in the backup step; resolves with its id. */
  snapshot?: () => Promise<string>;
  /** `--from STEP` / `--only STEP`: part of the runbook, on the results of the recorded run. */
  from?: DeployStep;
  only?: DeployStep;
  /** `--step`: asked before each step (continue / skip / abort). */
  prompter?: StepPrompter;
  /** The commands refusals and summaries suggest, from the user's command line (lib/cli/command-hint.ts). */
  hints?: CommandHints;
}

export interface DeploySummary {
  ok: boolean;
  runId: string;
  deployId?: string;
  target: string;
  volume: string;
  liveDir: string;
  steps: StepReport[];
  source: { dir: string; bytes: number; collections: number; records: number };
  archive?: { bytes: number; sha256: string; chunks: number; compressionRatio: number };
  /** Bytes this run sent, and bytes of the chunks already verified on the remote (not sent again); also after a failed upload. */
  upload: { method: string; chunksSent: number; chunksSkipped: number; bytesSent: number; bytesSkipped: number };
  backup?: BackupTaken;
  /** The preflight's comparison of the source's Chroma with the server's (lib/chroma/version-check.ts). */
  chromaVersion?: ChromaVersionCheck;
  /** Volume snapshot taken before the backup (fly: `--snapshot`): a second restore point. */
  snapshotId?: string;
  restartMs?: number;
  /** The restart command's output on the host, and its last lines when the restart failed. */
  restartLog?: { file: string; tail: string[] };
  downtimeMs?: number;
  /** Preflight's proof that the replaced dir is the served one (lib/volume/served-dir-check.ts). */
  servedDir?: ServedDirRecord;
  verified: boolean;
  /** `--app-health-url`: the three checks of the app (answer, the live file held, counts on the remote). */
  appServing?: AppServingReport;
  warnings: string[];
  error?: string;
  rolledBack: boolean;
  rollback: UndoOutcome[];
  failedDir?: string;
  /** Where the runbook state is kept (for `--from`). */
  stateFiles?: { remote: string; local: string };
}

export interface BackupTaken {
  name: string;
  bytes: number;
  sha256: string;
  pruned: string[];
}

/** What the package step made: enough to upload, reassemble and clean up, also in a later run (the chunk files are in chunksDir). */
export interface PackedArchive {
  deployId: string;
  sha256: string;
  bytes: number;
  inputBytes: number;
  chunks: { name: string; size: number; sha256: string }[];
  fileCount: number;
  fileListSha256: string;
}

/** What the swap found and did (its undo needs it). */
export interface SwapResult {
  hadLive: boolean;
  movedOld: boolean;
  /** The data ids the swap moved (its journal on the volume has them too). */
  ids: SwapIds;
}

/** The outcome recorded for a failed run whose undo put the old data back but could not restart or check it. */
export const UNDONE_UNVERIFIED = 'failed; old data restored; server not verified';

/** The options every step's scripts depend on, in a run and in a plan. */
export type FactOptions = Pick<DeployOptions, 'source' | 'host' | 'uploader' | 'chunkSize' | 'healthUrl' | 'appHealthUrl' | 'healthTimeoutMs' | 'restartTimeoutMs' | 'keepBackups'>;

/** What a step's remote scripts are built from (by its run and by its plan, with the same calls). */
export interface DeployFacts {
  o: FactOptions;
  runId: string;
  layout: RemoteLayout;
  /** This run's own dir in the work root: WORK/chroma-ferry-<run id>. */
  runDir: string;
  /** The owner record the lock is taken with (JSON). */
  lockOwner: string;
  /** The clock for names and records on the remote (backup file name, the kept manifest's time). */
  now(): Date;
  manifest?: SqliteManifest;
  packed?: PackedArchive;
  /** The data id the reassemble stamped into NAME.new (lib/volume/data-id.ts). */
  nextId?: string;
}

export interface DeployCtx extends DeployFacts {
  o: DeployOptions;
  stack: CompensationStack;
  /** The work root (`--work-dir` or the system temp dir). */
  workRoot: string;
  summary: DeploySummary;
  preDeploy?: ServedCollection[];
  /** The preflight's read of the source's chroma.sqlite3 (migrations + manifest, lib/chroma/source-sqlite.ts). */
  sourceSqlite?: SourceSqlite;
  snapshotDir?: string;
  /** The snapshot and packing started while the preflight runs (a new run that packs and uploads at once). */
  packAhead?: PackAhead;
  /**
   * With the packing started ahead: settled once the first chunk is on the remote (or the packing
   * ended, or no upload follows, or any step failed). The backup's remote tar + gzip starts then,
   * so that its CPU slows neither the round trips before the first chunk nor the chunks' start.
   */
  uploadUnderway?: { promise: Promise<void>; settle(): void };
  chunksDir?: string;
  /** Set when this run packaged the chunks (a resumed run checks the kept ones first). */
  packedThisRun?: boolean;
  /** The upload step follows the package step in this run, unprompted: chunks are sent while packing. */
  earlyUpload: boolean;
  shipper?: ChunkShipper;
  /** The transfer's one progress display, opened with the shipper, shown by package then upload. */
  transferDisplay?: TransferDisplay;
  swap?: SwapResult;
  /** The swap's remote launcher was started: from then on the run never reports "nothing changed" (exit 2). */
  swapStarted?: boolean;
  /** The undo put the data live before this run back as NAME (its restart or check may still have failed). */
  swapReversed?: boolean;
  /** The commands refusals and summaries suggest. */
  hints: CommandHints;
  /** The steps this run runs (`--from`, `--only`). */
  selected: ReadonlySet<string>;
  restartAttempted: boolean;
  swapStartedAt?: number;
  /** The verify's wait for the restarted server, started alongside the record of its start (verify's `ahead`). */
  servingAhead?: Promise<ServingCheck>;
  /** Resuming the recorded run (`--from`/`--only`). */
  resumed?: RunbookState;
  lockHeld: boolean;
  store: RunbookStateStore;
  /**
   * The state belongs to the lock holder: once this run released its lock (lockReleased), only
   * this machine's copy is written. So the closing state goes before the release: in the
   * cleanup's remote command (closingStateWrite, set by runDeploy), and after an unwind at the
   * run's end, to which the lock's undo leaves the release (lockReleasePending; lock-release.ts).
   */
  closingStateWrite?: () => RemoteScript;
  lockReleased?: boolean;
  lockReleasePending?: boolean;
}

/** Options a plan takes beyond the facts. */
export type PlanOptions = FactOptions & Pick<DeployOptions, 'volume' | 'dbDir' | 'workDir'> & {
  signal?: AbortSignal;
  /** Volume snapshot before the backup (fly: `--snapshot`). */
  snapshot?: boolean;
  /** Where the target came from when --target was not given (e.g. ./fly.toml). */
  targetSource?: string;
};

/** A plan knows every fact up front; the local work files are named for a person to make by hand. */
export interface DeployPlanCtx extends DeployFacts {
  o: PlanOptions;
  manifest: SqliteManifest;
  packed: PackedArchive;
  /** argv that runs this CLI on this machine. */
  cli: string[];
  snapshotDir: string;
  chunksDir: string;
  manifestFile: string;
  /** A command run on this machine. */
  local(what: string, argv: string[], expect?: string): PlanCommand;
  /** A remote script, as the host runs it. */
  remote(script: RemoteScript, expect?: string): PlanCommand;
}

export type DeployStepObject = AnyStep<DeployCtx, DeployPlanCtx>;

/** Every restart of this run (the undo's too): bounded by `--restart-timeout`, its output in `.ferry/restart-RUNID.log`. */
export function restartOptions(f: DeployFacts): Pick<RestartOptions, 'timeoutMs' | 'logFile'> {
  return runRestartOptions(f.o.restartTimeoutMs, f.layout, f.runId);
}

/** The remote incoming dir of the packed archive: .ferry/incoming/<deploy id>. */
export function incomingOf(f: DeployFacts): string {
  return incomingDir(f.layout, packedOf(f).deployId);
}

/** The remote trash dir of the deploy: .ferry/trash/<deploy id>. */
export function trashOf(f: DeployFacts): string {
  return trashDir(f.layout, packedOf(f).deployId);
}

/**
 * The id of the data in NAME.new: what this run's reassemble stamped (recorded in its result), else
 * (a plan; a run recorded before the extraction's stamp) the archive's and the run's.
 */
export function nextDataIdOf(f: DeployFacts): string {
  return f.nextId ?? archiveDataId(packedOf(f).sha256, f.runId);
}

export function packedOf(f: DeployFacts): PackedArchive {
  if (!f.packed) throw new Error('no packed archive in this run (the package step has not run)');
  return f.packed;
}

export function manifestOf(f: DeployFacts): SqliteManifest {
  if (!f.manifest) throw new Error('no manifest in this run (the manifest step has not run)');
  return f.manifest;
}

/** The packed archive, now known: ids in the summary. */
export function usePackedArchive(c: DeployCtx, p: PackedArchive): void {
  c.packed = p;
  c.summary.deployId = p.deployId;
  c.summary.archive = { bytes: p.bytes, sha256: p.sha256, chunks: p.chunks.length, compressionRatio: p.inputBytes ? p.bytes / p.inputBytes : 1 };
}

/** A recorded result that is not an object (a damaged state file). */
export function recordOf(raw: unknown, step: DeployStep): Record<string, unknown> {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new UserError(`the recorded ${step} result is not valid; start again with --from ${step}`);
  }
  return raw as Record<string, unknown>;
}
