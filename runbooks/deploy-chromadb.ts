/**
 * Runbook: deploy a local Chroma persist dir onto a remote volume (seed 000, "Fly Volumes Direct
 * Replace"). Ten steps, in order; each completed step pushes its undo on one compensation stack,
 * which unwinds once, newest first, on failure, Ctrl-C or SIGTERM.
 *
 *   preflight   source, target, tools, free space, lock      undo: release the lock
 *   manifest    consistent snapshot + per-collection counts  undo: (local only)
 *   backup      tar.gz of the live dir in .ferry/backups     undo: none (kept); runs alongside package..reassemble
 *   package     tar + gzip stream into checksummed chunks    undo: (local only)
 *   upload      chunks to .ferry/incoming/<id>, verified      undo: none (kept to resume)
 *   reassemble  archive sha256, extract to NAME.new, list     undo: remove NAME.new
 *   swap        NAME -> NAME.old, NAME.new -> NAME            undo: old back, restart, verify
 *   restart     --restart-cmd                                 undo: in swap's undo
 *   verify      heartbeat + every count equals the manifest   undo: none
 *   cleanup     incoming chunks, work files, lock             undo: none
 *
 * Each step's status and the results later steps need are kept in the runbook state (remote
 * `.ferry/` and local, lib/runbook-state.ts), so `--from STEP` / `--only STEP` resume or repeat
 * part of a run; a step whose needed results are missing refuses (runner `needs`). The remote
 * copy holds ids, checksums, counts and outcomes; the local paths (run dir, snapshot, chunks,
 * source) are in the local copy only, used only inside this run's dir (lib/run-dir.ts) and only
 * when both copies agree. Local work files live in `<work root>/chroma-ferry-<run id>` alone.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { packInputId, packToChunks } from '../lib/archive/pack.ts';
import { ChunkShipper } from '../lib/upload/chunk-shipper.ts';
import { snapshotSource } from '../lib/archive/snapshot.ts';
import { ChromaAuthError, listCollectionCounts, type ServedCollection } from '../lib/chroma/http.ts';
import { readSqliteManifestInWorker, type SqliteManifest } from '../lib/chroma/sqlite-manifest.ts';
import { CompensationStack, type UndoOutcome } from '../lib/compensation.ts';
import { UserError } from '../lib/errors.ts';
import type { RemoteHost, RestartOptions } from '../lib/hosts/remote-host.ts';
import { DEFAULT_RESTART_TIMEOUT_MS, restartLogFile, RestartError } from '../lib/hosts/restart.ts';
import type { ChunkUploader } from '../lib/upload/chunk-uploader.ts';
import { incomingDir, remoteLayout, trashDir, type RemoteLayout } from '../lib/remote-layout.ts';
import { cleanupScript, parseKv, reassembleScript, unlockScript } from '../lib/remote-scripts.ts';
import { commandHints, type CommandHints } from '../lib/command-hint.ts';
import { archiveDataId, writeDataIdScript } from '../lib/volume/data-id.ts';
import {
  cleanupVolume, reconcileBeforeCommand, recordVerifiedData, removeUnusedNext, swapIn, undoSwap, withReconnect, type BeforeCommand,
} from '../lib/volume/deploy-swap.ts';
import type { SwapIds } from '../lib/volume/swap-journal.ts';
import { runRefusing } from '../lib/remote/refusals.ts';
import { applyRetention, makeRemoteBackup } from '../lib/backup-ops.ts';
import { checkVolume } from '../lib/volume-check.ts';
import { describeLockHolder, tryVolumeLock } from '../lib/volume-lock.ts';
import { keepDeployedManifestScript } from '../lib/deployed-manifest.ts';
import { formatBytes } from '../lib/units.ts';
import { waitUntilServing, type ExpectedCollection } from '../lib/verify-serving.ts';
import type { OutputMode } from '../lib/output.ts';
import { describeError, initialReports, runSteps, type StepDef, type StepReport } from '../lib/runbook-runner.ts';
import { writeJsonAtomic } from '../lib/atomic-file.ts';
import { readPackManifest } from '../lib/archive/pack.ts';
import { newState, nextStep, RunbookStateStore, stateDifference, type RunbookState } from '../lib/runbook-state.ts';
import { isRunId, newRunId, openRunDir, parseWorkRoot, pathInRunDir, removeRunDir, runDirOf } from '../lib/run-dir.ts';
import { selectSteps, type StepStatus } from '../lib/runbook-runner.ts';
import type { StepPrompter } from '../lib/step-prompt.ts';

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
  /** The commands refusals and summaries suggest, from the user's command line (lib/command-hint.ts). */
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
  upload: { method: string; chunksSent: number; chunksSkipped: number; bytesSent: number };
  backup?: { name: string; bytes: number; sha256: string; pruned: string[] };
  /** Volume snapshot taken before the backup (fly: `--snapshot`): a second restore point. */
  snapshotId?: string;
  restartMs?: number;
  /** The restart command's output on the host, and its last lines when the restart failed. */
  restartLog?: { file: string; tail: string[] };
  downtimeMs?: number;
  verified: boolean;
  warnings: string[];
  error?: string;
  rolledBack: boolean;
  rollback: UndoOutcome[];
  failedDir?: string;
  /** Where the runbook state is kept (for `--from`). */
  stateFiles?: { remote: string; local: string };
}

/** What the package step made: enough to upload, reassemble and clean up, also in a later run (the chunk files are in Ctx.chunksDir). */
interface PackedArchive {
  deployId: string;
  sha256: string;
  bytes: number;
  inputBytes: number;
  chunks: { name: string; size: number; sha256: string }[];
  fileCount: number;
  fileListSha256: string;
}

interface Ctx {
  o: DeployOptions;
  runId: string;
  layout: RemoteLayout;
  stack: CompensationStack;
  /** The work root (`--work-dir` or the system temp dir) and this run's dir in it: the only local dir removed. */
  workRoot: string;
  runDir: string;
  summary: DeploySummary;
  preDeploy?: ServedCollection[];
  manifest?: SqliteManifest;
  snapshotDir?: string;
  packed?: PackedArchive;
  chunksDir?: string;
  /** Set when this run packaged the chunks (a resumed run checks the kept ones first). */
  packedThisRun?: boolean;
  /** The upload step follows the package step in this run, unprompted: chunks are sent while packing. */
  earlyUpload: boolean;
  shipper?: ChunkShipper;
  shipProgress?: (s: ChunkShipper) => void;
  deployId?: string;
  incoming?: string;
  trash?: string;
  swap?: SwapResult;
  /** The swap's remote launcher was started: from then on the run never reports "nothing changed" (exit 2). */
  swapStarted?: boolean;
  /** The undo put the data live before this run back as NAME (its restart or check may still have failed). */
  swapReversed?: boolean;
  hints: CommandHints;
  /** The steps this run runs (`--from`, `--only`). */
  selected: ReadonlySet<string>;
  restartAttempted: boolean;
  swapStartedAt?: number;
  /** Resuming the recorded run (`--from`/`--only`). */
  resumed?: RunbookState;
  lockHeld: boolean;
  store: RunbookStateStore;
}

interface SwapResult {
  hadLive: boolean;
  movedOld: boolean;
  /** The data ids the swap moved (its journal on the volume has them too). */
  ids: SwapIds;
}

/** The id of the data this run extracts into NAME.new (unique per run: lib/volume/data-id.ts). */
function nextDataId(c: Ctx): string {
  return archiveDataId(c.packed!.sha256, c.runId);
}

/** The outcome recorded for a failed run whose undo put the old data back but could not restart or check it. */
export const UNDONE_UNVERIFIED = 'failed; old data restored; server not verified';

/** Steps whose results each step uses (checked before it runs, in this run or the recorded one). */
const STEP_NEEDS: Record<DeployStep, DeployStep[]> = {
  preflight: [], manifest: [], backup: [], package: ['manifest'], upload: ['package'], reassemble: ['package', 'upload'],
  swap: ['reassemble'], restart: ['swap'], verify: ['manifest', 'swap'], cleanup: ['package'],
};

export async function runDeploy(o: DeployOptions): Promise<DeploySummary> {
  const workRoot = parseWorkRoot(o.workDir, o.source);
  const layout = remoteLayout(o.host.resolveVolume(o.volume), o.dbDir);
  const store = new RunbookStateStore(o.host, layout, 'deploy');
  const partial = Boolean(o.from || o.only);
  const selected = selectSteps(DEPLOY_STEPS, { from: o.from, only: o.only }, ['preflight']);
  const recorded = partial ? await loadRecordedRun(store, o, STEP_NEEDS[(o.from ?? o.only)!].length === 0) : undefined;
  const resumed = recorded?.state;
  const runId = resumed?.runId ?? newRunId();
  const runDir = runDirOf(workRoot, runId);
  const summary: DeploySummary = {
    ok: false, runId, target: o.host.label, volume: layout.volume, liveDir: layout.live,
    steps: initialReports(DEPLOY_STEPS.map((name) => ({ name }))),
    source: { dir: o.source, bytes: 0, collections: 0, records: 0 },
    upload: { method: o.uploader.method, chunksSent: 0, chunksSkipped: 0, bytesSent: 0 },
    verified: false, warnings: [...(recorded?.warnings ?? [])], rolledBack: false, rollback: [],
    stateFiles: { remote: store.remoteFile, local: store.localFile },
  };
  const state = resumed ?? newState('deploy', runId, o.host.label, layout.live, DEPLOY_STEPS);
  state.finished = false;
  delete state.outcome;
  const local = (state.local ??= {});
  const earlyUpload = selected.has('package') && selected.has('upload') && !o.prompter;
  const hints = o.hints ?? commandHints(undefined);
  const ctx: Ctx = { o, runId, layout, stack: new CompensationStack(), workRoot, runDir, summary, restartAttempted: false, resumed, lockHeld: false, store, earlyUpload, hints, selected };
  if (resumed) await restoreRecordedSteps(ctx, resumed, selected, recorded.noLocal);

  // One save at a time, in call order: the backup step runs alongside others and reports too.
  let saving: Promise<void> = Promise.resolve();
  const save = () => {
    const next = saving.catch(() => undefined).then(async () => { if (ctx.lockHeld) await withReconnect(() => store.save(state)); });
    saving = next;
    return next;
  };
  const steps: StepDef<Ctx>[] = DEPLOY_STEPS.map((name) => ({
    name, title: STEP_TITLES[name], run: STEPS[name], needs: STEP_NEEDS[name],
    // The remote backup needs nothing local: it runs while the snapshot is packed and sent.
    background: name === 'backup', waitFor: name === 'swap' ? ['backup'] : undefined,
  }));
  let opened = false;
  let keepRunDir = false;
  try {
    await openRunDir(runDir, o.source);
    opened = true;
    const r = await runSteps(steps, ctx, {
      output: o.output, signal: o.signal, stack: ctx.stack, reports: summary.steps, prompter: o.prompter, selected,
      onStatus: async (name, status) => {
        state.steps[name] = status;
        if (status === 'done') {
          state.results[name] = RESULTS[name as DeployStep](ctx);
          const paths = LOCAL_RESULTS[name as DeployStep];
          if (paths) local[name] = paths(ctx);
        }
        await save(); // from the moment the lock is held: the state belongs to the lock holder
      },
    });
    summary.ok = r.ok;
    summary.rollback = r.rollback;
    if (r.ok) {
      const finished = summary.steps.find((st) => st.name === 'cleanup')!.status === 'done';
      state.finished = finished;
      if (finished) state.outcome = summary.verified ? 'deployed and verified' : 'deployed, not verified';
      else await endPartialRun(ctx, state);
      await save();
      // Not finished (`--only`, `--from` stopping early): later steps may need the snapshot or chunks.
      keepRunDir = !finished;
    } else {
      summary.error = describeError(r.error, o.signal);
      const note = o.uploader.noteAfterFailure?.();
      if (note) summary.warnings.push(note);
      summary.rolledBack = r.rollback.some((u) => u.name === 'swap' && u.ok);
      for (const u of r.rollback) if (u.ok && u.name in state.steps) state.steps[u.name] = 'undone';
      // The renames were reversed even when the old data's restart or check failed: a later
      // rollback restarts and checks that data, never one further back.
      if (ctx.swapReversed) state.steps.swap = 'undone';
      state.finished = r.rollback.every((u) => u.ok) && !o.signal.aborted;
      state.outcome = summary.rolledBack ? 'failed, rolled back'
        : ctx.swapReversed && ctx.swap ? UNDONE_UNVERIFIED
          : ctx.swap ? 'failed after the swap' : 'failed before the swap; the live dir is unchanged';
      if (state.outcome === UNDONE_UNVERIFIED) {
        summary.warnings.push(`old data restored; server not verified: restart and check it with: ${ctx.hints.rollback()}`);
      }
      await save().catch(() => undefined);
      // Chunks packed and not yet used: kept so that `--from upload` need not pack again.
      keepRunDir = !summary.rolledBack && state.steps.package === 'done';
      if (keepRunDir) summary.warnings.push(`packaged chunks kept in ${runDir} for --from upload`);
      // Refused before the swap: a one-line user error (exit 2). Once the swap started, never.
      if (r.error instanceof UserError && !ctx.swapStarted) throw r.error;
    }
  } finally {
    if (opened && !keepRunDir) await removeRunDir(runDir, o.source).catch(() => undefined);
  }
  return summary;
}

/** The recorded run `--from`/`--only` continues, and why this machine's local results of it are not used (if not). */
interface RecordedRun {
  /** Statuses and results from the remote copy (else this machine's); local paths only from this machine's copy of the same run. */
  state: RunbookState;
  noLocal?: string;
  warnings: string[];
}

/**
 * The recorded run `--from`/`--only` continues; refuses when there is none, when it is for another
 * source, or when the remote copy of its state disagrees with this machine's (never obeyed).
 */
async function loadRecordedRun(store: RunbookStateStore, o: DeployOptions, canStartNew: boolean): Promise<RecordedRun | undefined> {
  const flag = o.from ? `--from ${o.from}` : `--only ${o.only}`;
  const { remote, local } = await store.loadBoth(o.signal);
  const state = remote ?? local;
  if ((!state || state.runbook !== 'deploy') && canStartNew) return undefined; // a step that needs nothing: a new run
  if (!state || state.runbook !== 'deploy') {
    throw new UserError(`${flag}: no recorded deploy for ${o.host.label} ${o.volume}/${o.dbDir} (looked in ${store.remoteFile} and ${store.localFile}); run the deploy without ${flag.split(' ')[0]}`);
  }
  if (!isRunId(state.runId)) {
    throw new UserError(`${flag}: the recorded deploy in ${remote ? store.remoteFile : store.localFile} has no valid run id; run the deploy without ${flag.split(' ')[0]}`);
  }
  const warnings: string[] = [];
  let mine = local?.runbook === 'deploy' ? local : null;
  let noLocal: string | undefined;
  if (remote && mine) {
    if (mine.runId !== remote.runId) {
      noLocal = `this machine has no state of run ${remote.runId} (its state is of run ${mine.runId})`;
      warnings.push(`run ${remote.runId} on the remote was not run from this machine's state (it records run ${mine.runId}): no local work files are taken from it`);
      mine = null;
    } else {
      const diff = stateDifference(remote, mine);
      if (diff) {
        throw new UserError(
          `${flag}: the remote state of run ${remote.runId} differs from this machine's copy (${diff}); neither is followed: ` +
            `see what the volume holds (chroma-ferry backups, verify), then run chroma-ferry rollback or a new deploy (after chroma-ferry unlock)`,
        );
      }
    }
  }
  noLocal ??= mine ? undefined : `no state of run ${state.runId} on this machine (${store.localFile})`;
  const recordedSource = (mine?.local?.preflight as { source?: unknown } | undefined)?.source;
  if (typeof recordedSource === 'string' && path.resolve(recordedSource) !== path.resolve(o.source)) {
    throw new UserError(`${flag}: the recorded deploy (run ${state.runId}) is of ${recordedSource}, not ${o.source}; pass --source ${recordedSource} or run a new deploy`);
  }
  return { state: { ...state, local: mine?.local ?? {} }, noLocal, warnings };
}

/**
 * Steps before the selection that the recorded run completed: their results come back into this
 * run. Local paths (snapshot, chunks) only when inside this run's dir; a selected step that needs
 * one that is not refuses here, before anything is written.
 */
async function restoreRecordedSteps(c: Ctx, state: RunbookState, selected: ReadonlySet<string>, noLocal: string | undefined): Promise<void> {
  for (const name of DEPLOY_STEPS) {
    const st: StepStatus = state.steps[name] ?? 'not run';
    const report = c.summary.steps.find((r) => r.name === name)!;
    const result = state.results[name];
    if (name === 'preflight') {
      RESTORE.preflight!(c, result);
      continue;
    }
    if (selected.has(name)) continue;
    if (st === 'done' && result !== undefined) {
      RESTORE[name]?.(c, result);
      report.status = 'earlier run';
      report.note = `run ${state.runId}`;
    } else if (st === 'skipped') {
      report.status = 'skipped';
      report.note = `in run ${state.runId}`;
    }
  }
  const flag = c.o.from ? `--from ${c.o.from}` : `--only ${c.o.only}`;
  const restored = (name: DeployStep) => c.summary.steps.find((r) => r.name === name)!.status === 'earlier run';
  const localPath = async (step: DeployStep, key: string) => {
    if (noLocal) return { refused: noLocal };
    return pathInRunDir((state.local?.[step] as Record<string, unknown> | undefined)?.[key], c.runDir);
  };
  if (selected.has('package') && restored('manifest')) {
    const snap = await localPath('manifest', 'snapshotDir');
    if ('refused' in snap) {
      throw new UserError(`${flag}: package needs the snapshot of run ${state.runId} in this run's work dir ${c.runDir}, and ${snap.refused}; take it again with --from manifest (or pass the --work-dir run ${state.runId} used)`);
    }
    c.snapshotDir = snap.path;
  }
  if (selected.has('upload') && restored('package')) {
    const chunks = await localPath('package', 'chunksDir');
    if ('refused' in chunks) {
      throw new UserError(`${flag}: upload needs the chunks run ${state.runId} packed in this run's work dir ${c.runDir}, and ${chunks.refused}; pack them again with --from manifest (or pass the --work-dir run ${state.runId} used)`);
    }
    c.chunksDir = chunks.path;
  }
}

/**
 * A resumed run after the volume's reconciliation: its swap, complete on the volume though the
 * state does not say so (a crash right after the renames), counts as done; a swap the state calls
 * done whose data is no longer live (rolled back since) leaves nothing to continue.
 */
function adoptReconciledSwap(c: Ctx, rec: BeforeCommand): void {
  const report = c.summary.steps.find((r) => r.name === 'swap')!;
  const j = rec.ownSwap;
  if (!c.swap && j && c.packed && j.ids.next === nextDataId(c)) {
    c.swap = { hadLive: j.ids.live !== undefined, movedOld: j.ids.old !== undefined, ids: j.ids };
    c.swapStarted = true;
    c.restartAttempted = true;
    pushSwapUndo(c, c.swap);
    c.resumed!.steps.swap = 'done';
    c.resumed!.results.swap = RESULTS.swap(c);
    if (!c.selected.has('swap')) {
      report.status = 'earlier run';
      report.note = `run ${c.runId} (completed on the volume)`;
    }
  }
  const live = rec.result.facts.live;
  if (c.swap && !c.selected.has('swap') && live.id !== c.swap.ids.next) {
    throw new UserError(
      `the recorded deploy (run ${c.runId}) swapped in ${c.swap.ids.next}, but ${c.layout.live} now holds ${live.id ?? `no data of it (${live.kind})`}: ` +
        'nothing of that run is left to continue; run a new deploy (without --from/--only)',
    );
  }
}

/**
 * Warns when the two copies of the recorded state differ. Also removes the run dir a failed
 * earlier run of this machine kept for `--from upload` (a new run packs again): only one this
 * machine's state records, named for its run id in this work root. (Unverified data live is
 * refused by the volume's reconciliation, never by the state alone.)
 */
async function checkRecordedRun(c: Ctx): Promise<void> {
  const { o } = c;
  const { remote, local } = await c.store.loadBoth(o.signal);
  if (remote && local && remote.runId === local.runId) {
    const diff = stateDifference(remote, local);
    if (diff) c.summary.warnings.push(`the remote state of run ${remote.runId} differs from this machine's copy (${diff}); only this new run's state is kept`);
  }
  if (local && local.runId !== c.runId && isRunId(local.runId)) {
    const kept = runDirOf(c.workRoot, local.runId);
    if ((local.local?.preflight as { runDir?: unknown } | undefined)?.runDir === kept) await removeRunDir(kept, o.source).catch(() => undefined);
  }
}

/** `--from`/`--only` ended before cleanup: release the lock unless swapped data still awaits its verify. */
async function endPartialRun(c: Ctx, state: RunbookState): Promise<void> {
  const awaitingVerify = state.steps.swap === 'done' && state.steps.verify !== 'done' && state.steps.verify !== 'skipped';
  if (awaitingVerify) {
    c.summary.warnings.push(`the swapped-in data is not verified yet: the lock stays; continue with --from ${nextStep(state, DEPLOY_STEPS) ?? 'verify'}`);
    return;
  }
  await c.o.host.run(unlockScript(c.layout, c.runId));
  c.stack.drop('lock');
  const next = nextStep(state, DEPLOY_STEPS);
  if (next) c.summary.warnings.push(`stopped before ${next}: continue with --from ${next}`);
}

export const STEP_TITLES: Record<DeployStep, string> = {
  preflight: 'preflight: source, target, tools, free space, lock',
  manifest: 'manifest: consistent snapshot and per-collection counts',
  backup: 'backup: archive the live dir on the remote',
  package: 'package: tar + gzip into checksummed chunks',
  upload: 'upload: chunks to the remote, each verified',
  reassemble: 'reassemble: verify the archive, extract to NAME.new',
  swap: 'swap: NAME -> NAME.old, NAME.new -> NAME',
  restart: 'restart: the Chroma server',
  verify: 'verify: heartbeat and counts equal the manifest',
  cleanup: 'cleanup: work files and lock',
};

/** What undoes each step when a later one fails (the compensation stack; also printed by --plan). */
export const STEP_UNDO: Record<DeployStep, string> = {
  preflight: 'release the lock (unlock script with this run id)',
  manifest: 'nothing on the remote (local work files only)',
  backup: 'none: the backup is kept',
  package: 'nothing on the remote (local work files only)',
  upload: 'none: uploaded chunks are kept so that a rerun resumes',
  reassemble: 'remove NAME.new',
  swap: 'NAME -> NAME.failed-<stamp>, NAME.old -> NAME, the trashed .old back; then restart and check the old counts',
  restart: 'part of the swap undo (restart again on the old data)',
  verify: 'none',
  cleanup: 'none: the deploy is done',
};

/** What each completed step records in the runbook state, both copies: ids, checksums, counts, outcomes; never a path. */
const RESULTS: Record<DeployStep, (c: Ctx) => unknown> = {
  preflight: (c) => ({ preDeploy: c.preDeploy ?? null }),
  manifest: (c) => ({ manifest: c.manifest }),
  backup: (c) => ({ backup: c.summary.backup ?? null, snapshotId: c.summary.snapshotId ?? null }),
  package: (c) => c.packed,
  upload: (c) => ({ ...c.summary.upload }),
  reassemble: () => ({}),
  swap: (c) => ({ ...c.swap }),
  restart: (c) => ({ restartMs: c.summary.restartMs ?? null }),
  verify: (c) => ({ verified: c.summary.verified }),
  cleanup: () => ({}),
};

/** The paths on this machine a completed step records: in the local copy of the state only. */
const LOCAL_RESULTS: Partial<Record<DeployStep, (c: Ctx) => Record<string, string | undefined>>> = {
  preflight: (c) => ({ source: c.o.source, runDir: c.runDir }),
  manifest: (c) => ({ snapshotDir: c.snapshotDir }),
  package: (c) => ({ chunksDir: c.chunksDir }),
};

/** Puts a recorded step's result back into this run's context (and its undo on the stack). */
const RESTORE: Partial<Record<DeployStep, (c: Ctx, r: any) => void>> = {
  preflight(c, r) {
    // Counts served before the recorded run's swap: what a rollback must bring back.
    if (r?.preDeploy) c.preDeploy = r.preDeploy as ServedCollection[];
  },
  manifest(c, r) {
    c.manifest = r.manifest as SqliteManifest;
    c.summary.source.collections = c.manifest.collections.length;
    c.summary.source.records = c.manifest.totalRecords;
  },
  backup(c, r) {
    if (r.backup) c.summary.backup = r.backup;
    if (r.snapshotId) c.summary.snapshotId = r.snapshotId;
  },
  package(c, r) {
    usePackedArchive(c, checkedPackedArchive(r));
  },
  reassemble(c) {
    pushReassembleUndo(c);
  },
  verify(c, r) {
    // Verified by the recorded run: this run (`--from cleanup`) ends a verified deploy.
    if (r?.verified === true) c.summary.verified = true;
  },
  swap(c, r) {
    c.swap = { hadLive: Boolean(r.hadLive), movedOld: Boolean(r.movedOld), ids: r.ids ?? { next: nextDataId(c) } };
    c.swapStarted = true;
    // The recorded run may have restarted the server on the new data: an undo restarts it again.
    c.restartAttempted = true;
    pushSwapUndo(c, c.swap);
  },
};

/**
 * A recorded package result, its ids checked: the deploy id names the remote incoming and trash
 * dirs (removed by the cleanup) and the chunk names files in them, so neither may be a path.
 */
function checkedPackedArchive(r: unknown): PackedArchive {
  const p = r as Partial<PackedArchive> | null;
  const hex = (v: unknown, n: number) => typeof v === 'string' && new RegExp(`^[0-9a-f]{${n}}$`).test(v);
  const ok = p && hex(p.deployId, 16) && hex(p.sha256, 64) && Array.isArray(p.chunks) && p.chunks.length > 0 &&
    p.chunks.every((ch) => /^chunk-\d{6,}$/.test(String(ch?.name)) && hex(ch.sha256, 64) && Number.isSafeInteger(ch.size));
  if (!ok) throw new UserError('the recorded package result (deploy id, chunk names, checksums) is not valid; start again with --from manifest');
  return {
    deployId: p.deployId!, sha256: p.sha256!, bytes: Number(p.bytes), inputBytes: Number(p.inputBytes),
    chunks: p.chunks!.map((ch) => ({ name: ch.name, size: ch.size, sha256: ch.sha256 })), fileCount: Number(p.fileCount), fileListSha256: String(p.fileListSha256),
  };
}

function usePackedArchive(c: Ctx, p: PackedArchive): void {
  c.packed = p;
  c.deployId = p.deployId;
  c.summary.deployId = p.deployId;
  c.incoming = incomingDir(c.layout, p.deployId);
  c.trash = trashDir(c.layout, p.deployId);
  c.summary.archive = { bytes: p.bytes, sha256: p.sha256, chunks: p.chunks.length, compressionRatio: p.inputBytes ? p.bytes / p.inputBytes : 1 };
}

/** Undo of the reassemble: NAME.new removed only when it is this run's and nothing else needs it (lib/volume/deploy-swap.ts). */
function pushReassembleUndo(c: Ctx): void {
  c.stack.push('reassemble', async () => {
    if (!(await removeUnusedNext(c.o.host, c.layout, nextDataId(c)))) c.summary.warnings.push(`${c.layout.next} kept: the volume still needs it`);
  });
}

/**
 * Undo of the swap, by its journal on the volume: the old data back as NAME (the rejected data
 * kept as NAME.failed-STAMP), then restarted and checked.
 */
function pushSwapUndo(c: Ctx, swap: SwapResult): void {
  const { o, layout } = c;
  c.stack.push('swap', async () => {
    const r = await undoSwap(o.host, layout, c.runId, swap.ids);
    c.swapReversed = r.restored;
    if (r.failedDir) c.summary.failedDir = r.failedDir;
    // From here on the renames are undone: a failure is of the old data's restart or check (the
    // run's outcome says "old data restored; server not verified").
    if (c.restartAttempted) {
      await o.host.restart(restartOptions(c));
      if (o.healthUrl && swap.hadLive) {
        const expected: ExpectedCollection[] = c.preDeploy ?? [];
        const check = await waitUntilServing(o.healthUrl, expected, { timeoutMs: o.healthTimeoutMs, settleMs: c.preDeploy ? 5000 : 0 });
        if (c.preDeploy && check.mismatches.length) {
          throw new Error(`old data is back but the server does not serve it as before: ${check.mismatches.join('; ')}`);
        }
      }
    }
  });
}

/** Every restart of this run: bounded by `--restart-timeout`, its output in `.ferry/restart-RUNID.log`. */
function restartOptions(c: Ctx): RestartOptions {
  return { timeoutMs: c.o.restartTimeoutMs ?? DEFAULT_RESTART_TIMEOUT_MS, logFile: restartLogFile(c.layout, c.runId) };
}

type Step = (c: Ctx, progress: (line: string) => void) => Promise<string | void>;

const STEPS: Record<DeployStep, Step> = {
  async preflight(c, progress) {
    const { o, layout } = c;
    c.summary.source.bytes = await dirBytes(o.source);
    progress(`probing ${o.host.label}`);
    const probe = await checkVolume(o.host, layout, o.signal);
    if (probe.get('writable') !== 'yes') throw new UserError(`volume ${layout.volume} on ${o.host.label} is not writable by this user`);
    const availKb = Number((probe.get('df') ?? '').split(/\s+/)[3]);
    const liveKb = kbOf(probe.get('live'));
    // Incoming archive (<= source size) + extraction (source size) + the backup of the live dir.
    const needKb = Math.ceil((c.summary.source.bytes * 2.05) / 1024) + liveKb;
    if (Number.isFinite(availKb) && availKb < needKb) {
      throw new UserError(
        `not enough free space on ${layout.volume}: ${formatBytes(availKb * 1024)} free, about ${formatBytes(needKb * 1024)} needed ` +
          `(archive + extraction + backup); free space or lower --keep-backups`,
      );
    }
    await o.uploader.preflight?.(o.signal);
    if (o.healthUrl && !c.preDeploy) {
      try {
        c.preDeploy = await listCollectionCounts(o.healthUrl);
      } catch (e) {
        // A server that refuses us now would fail the verify after the swap: refused before any change.
        if (e instanceof ChromaAuthError) throw new UserError(e.message);
        // A new run that will swap out a live dir: without the server's answer neither the deploy
        // nor its rollback can be verified, so refuse now, before anything changed.
        const swapsLive = probe.get('live') !== 'absent' && !c.resumed && selectSteps(DEPLOY_STEPS, { from: o.from, only: o.only }).has('swap');
        if (swapsLive && !o.allowServerDown) {
          throw new UserError(
            `the server at ${o.healthUrl} does not answer before the deploy (${e instanceof Error ? e.message : String(e)}): ` +
              'start it or fix --health-url, or pass --allow-server-down to deploy anyway',
          );
        }
        c.summary.warnings.push(`the server at ${o.healthUrl} did not answer before the deploy: rollback can check only that it answers`);
      }
    }
    const lock = await tryVolumeLock(o.host, layout, c.runId, 'deploy', o.signal);
    let adopted = false;
    if (!lock.acquired) {
      const { holder } = lock;
      // `--from` continues the recorded run: its lock (left by a crash) is this run's own.
      adopted = Boolean(c.resumed) && holder.runId === c.runId;
      if (!adopted) {
        const last = await c.store.load(o.signal).catch(() => null);
        const stopped = last && !last.finished && last.runId === holder.runId ? nextStep(last, DEPLOY_STEPS) : undefined;
        throw new UserError(
          `another run holds the deploy lock on ${layout.volume}${describeLockHolder(holder)}` +
            (stopped ? `; it stopped before ${stopped}: continue it with: ${c.hints.deployFrom(stopped)}; or, if no deploy is running, clear the lock with: ${c.hints.unlock()}`
              : `; if no deploy is running, clear it with: ${c.hints.unlock()}`),
        );
      }
    }
    c.stack.push('lock', async () => { await o.host.run(unlockScript(layout, c.runId)); });
    // The volume is the truth: an interrupted swap is finished or reversed first, and what it
    // cannot settle (unverified data live, a missing NAME) refuses here, before the state is written.
    const recorded = c.resumed ?? (await c.store.load(o.signal).catch(() => null));
    const rec = await reconcileBeforeCommand(o.host, layout, { command: 'deploy', runId: c.runId, recordedDeployRunId: recorded?.runId, hints: c.hints, signal: o.signal });
    c.summary.warnings.push(...rec.warnings);
    if (c.resumed) adoptReconciledSwap(c, rec);
    c.lockHeld = true;
    if (!c.resumed) await checkRecordedRun(c);
    return `${formatBytes(c.summary.source.bytes)} source, ${formatBytes(availKb * 1024)} free on the volume${adopted ? `; lock of run ${c.runId} taken over` : ''}`;
  },

  async manifest(c, progress) {
    progress('copying a consistent snapshot of the source');
    const snapshotDir = path.join(c.runDir, 'snapshot');
    await fs.rm(snapshotDir, { recursive: true, force: true }); // a kept one from an earlier run of this run dir
    const snap = await snapshotSource(c.o.source, snapshotDir, { signal: c.o.signal });
    c.snapshotDir = snap.dir;
    const m = await readSqliteManifestInWorker(snap.dir);
    if (m.pendingWrites > 0) {
      c.summary.warnings.push(`source has ${m.pendingWrites} queued writes not yet applied; counts are of applied records`);
    }
    c.manifest = m;
    c.summary.source.collections = m.collections.length;
    c.summary.source.records = m.totalRecords;
    await writeJsonAtomic(path.join(c.runDir, 'manifest.json'), m);
    return `${m.collections.length} collections, ${m.totalRecords} records`;
  },

  async backup(c, progress) {
    const { o, layout } = c;
    let snap = '';
    if (o.snapshot) {
      progress('volume snapshot');
      c.summary.snapshotId = await o.snapshot();
      snap = `snapshot ${c.summary.snapshotId}; `;
    }
    const made = await makeRemoteBackup(o.host, layout, { signal: o.signal, onStart: (name) => progress(`tar czf ${name}`) });
    if (!made) return `${snap ? `${snap}` : 'skipped: '}no live dir yet (first deploy)`;
    const removed = await applyRetention(o.host, layout, made.name, { keepCount: Math.max(1, o.keepBackups) }, o.signal);
    const backup = { name: made.name, bytes: made.bytes, sha256: made.sha256, pruned: removed.map((r) => r.name) };
    c.summary.backup = backup;
    return `${snap}${made.name} (${formatBytes(backup.bytes)})${removed.length ? `, pruned ${removed.length}` : ''}`;
  },

  async package(c, progress) {
    const { o } = c;
    const total = c.summary.source.bytes;
    const deployId = await packInputId(c.snapshotDir!, o.chunkSize, undefined, o.signal);
    // Chunks go out as soon as each is written, when the upload step follows in this run.
    const shipper = c.earlyUpload ? await openShipper(c, deployId) : undefined;
    c.chunksDir = path.join(c.runDir, 'chunks');
    let pack;
    try {
      pack = await packToChunks(c.snapshotDir!, c.chunksDir, o.chunkSize, {
        signal: o.signal,
        onProgress: (done) => progress(`${formatBytes(done)} / ${formatBytes(total)}${shipper ? `, ${shipper.done} chunks on the remote` : ''}`),
        onChunk: shipper ? (ch) => shipper.ship(ch) : undefined,
      });
    } catch (e) {
      await shipper?.finish().catch(() => undefined); // no upload left running behind the unwind
      throw e;
    }
    usePackedArchive(c, {
      deployId, sha256: pack.archiveSha256, bytes: pack.archiveBytes, inputBytes: pack.inputBytes, chunks: pack.chunks.map((ch) => ({ name: ch.name, size: ch.size, sha256: ch.sha256 })),
      fileCount: pack.fileList.length, fileListSha256: fileListSha256(pack.fileList),
    });
    c.packedThisRun = true;
    return `${pack.chunks.length} chunks, ${formatBytes(pack.archiveBytes)} (${(100 * c.summary.archive!.compressionRatio).toFixed(0)}% of ${formatBytes(pack.inputBytes)})` +
      (shipper ? `; ${shipper.done} already uploaded while packing` : '');
  },

  async upload(c, progress) {
    const { o } = c;
    const packed = c.packed!;
    const chunksDir = c.chunksDir!;
    if (!c.packedThisRun) await checkKeptChunks(packed, chunksDir);
    let shipper = c.shipper;
    if (!shipper) {
      shipper = await openShipper(c, packed.deployId);
      for (const [index, ch] of packed.chunks.entries()) shipper.ship({ ...ch, index, file: path.join(chunksDir, ch.name) });
    }
    c.shipProgress = (s) => progress(`${s.done}/${packed.chunks.length} chunks (${s.chunksSkipped} already there)`);
    await shipper.finish();
    Object.assign(c.summary.upload, { chunksSent: shipper.chunksSent, chunksSkipped: shipper.chunksSkipped, bytesSent: shipper.bytesSent });
    const { chunksSent, chunksSkipped, bytesSent } = c.summary.upload;
    const extra = o.uploader.uploadNote?.();
    return `${chunksSent} sent (${formatBytes(bytesSent)}), ${chunksSkipped} already on the remote${extra ? `; ${extra}` : ''}`;
  },

  async reassemble(c) {
    const { o, layout } = c;
    const packed = c.packed!;
    pushReassembleUndo(c);
    const kv = parseKv((await o.host.run(reassembleScript(layout, c.incoming!, packed.sha256, packed.chunks.map((ch) => ch.name)), { signal: o.signal })).stdout);
    if (Number(kv.get('files')) !== packed.fileCount || kv.get('list_sha256') !== packed.fileListSha256) {
      throw new Error(`extracted file list on the remote differs from the source snapshot (${kv.get('files')} files, expected ${packed.fileCount})`);
    }
    // The data's identity, once its content is checked: the swap and every later command go by it.
    await runRefusing(o.host, writeDataIdScript(layout.next, nextDataId(c)), { volume: layout.volume }, { signal: o.signal });
    return `${packed.fileCount} files in ${layout.next}`;
  },

  async swap(c, progress) {
    const { o, layout } = c;
    c.swapStartedAt = performance.now();
    if (c.swap) return 'already swapped on the volume (finished by reconciliation)';
    // Journaled and run by a detached remote worker, never cancelled half-way: a signal is honoured
    // once the undo (by the journal) is on the stack; a lost connection is asked the volume about.
    const out = await swapIn(o.host, layout, c.runId, nextDataId(c), {
      onReconnect: (line) => { progress(line); },
      onLaunch: (ids) => {
        c.swapStarted = true;
        pushSwapUndo(c, { hadLive: ids.live !== undefined, movedOld: ids.old !== undefined, ids });
      },
    });
    if (out.note) c.summary.warnings.push(`swap: ${out.note}`);
    if (out.status !== 'done') throw new Error(`the swap did not take place (${out.note ?? 'reversed on the remote'}): old data live; server not restarted`);
    c.swap = { hadLive: out.ids.live !== undefined, movedOld: out.ids.old !== undefined, ids: out.ids };
    o.signal.throwIfAborted();
    return c.swap.hadLive ? `${layout.live} -> ${layout.old}` : 'first deploy: no previous live dir';
  },

  async restart(c) {
    c.restartAttempted = true;
    const t0 = performance.now();
    let restarted: boolean;
    try {
      restarted = await c.o.host.restart({ ...restartOptions(c), signal: c.o.signal });
    } catch (e) {
      if (e instanceof RestartError) c.summary.restartLog = { file: e.logFile, tail: e.logTail };
      throw e;
    }
    c.summary.restartMs = performance.now() - t0;
    if (!restarted) {
      c.summary.warnings.push('no --restart-cmd: the server was not restarted and may still serve the old files');
      return 'skipped: no --restart-cmd';
    }
  },

  async verify(c) {
    const { o } = c;
    // The live data's manifest is kept in .ferry/ for `chroma-ferry verify --target` (lib/deployed-manifest.ts).
    const keepManifest = () => o.host.run(keepDeployedManifestScript(c.layout, c.manifest!, c.runId, c.summary.verified), { signal: o.signal });
    // The live data's id as the last verified one (also when deployed without a check: it is what
    // the user chose to serve, so the volume reconciles clean and NAME.old may be replaced later).
    const record = () => recordVerifiedData(o.host, c.layout, c.swap?.ids.next ?? nextDataId(c), { signal: o.signal });
    if (!o.healthUrl) {
      const why = o.noVerify ? '--no-verify' : 'no --health-url';
      c.summary.warnings.push(`${why}: the deployed data was not verified on a running server`);
      await keepManifest();
      await record();
      return `skipped: ${why}`;
    }
    const expected: ExpectedCollection[] = c.manifest!.collections;
    const check = await waitUntilServing(o.healthUrl, expected, { timeoutMs: o.healthTimeoutMs, signal: o.signal });
    if (check.mismatches.length) throw new Error(`the restarted server does not serve the deployed data: ${check.mismatches.join('; ')}`);
    if (c.swapStartedAt !== undefined) c.summary.downtimeMs = performance.now() - c.swapStartedAt;
    c.summary.verified = true;
    await keepManifest();
    await record();
    return `${expected.length} collections, counts equal (API ${check.api})`;
  },

  async cleanup(c) {
    const { o, layout } = c;
    await o.host.run(cleanupScript(c.incoming!, c.trash!), { signal: o.signal });
    // The trashed previous NAME.old (and a stale NAME.new) only as reconciliation allows.
    await cleanupVolume(o.host, layout, c.runId, { signal: o.signal });
    await o.host.run(unlockScript(layout, c.runId));
    c.stack.drop('lock');
    c.stack.clear(); // the deploy is done: nothing left to undo
    try {
      await o.uploader.cleanupAfterSuccess?.();
    } catch (e) {
      // The deploy is verified: a leftover elsewhere (bucket objects) is a warning, not a failure.
      c.summary.warnings.push(e instanceof Error ? e.message : String(e));
    }
    await removeRunDir(c.runDir, o.source);
  },
};

/** The chunk sender of this run, its incoming dir listed and the uploader begun. */
async function openShipper(c: Ctx, deployId: string): Promise<ChunkShipper> {
  const { o } = c;
  const shipper = new ChunkShipper(o.host, o.uploader, incomingDir(c.layout, deployId), deployId, o.uploadConcurrency, o.signal, (s) => c.shipProgress?.(s));
  await shipper.open();
  c.shipper = shipper;
  return shipper;
}

function fileListSha256(files: string[]): string {
  return crypto.createHash('sha256').update(files.map((f) => `${f}\n`).join('')).digest('hex');
}

/** A resumed upload sends the chunks a recorded run packed: they must still be there, unchanged. */
async function checkKeptChunks(p: PackedArchive, chunksDir: string): Promise<void> {
  const kept = await readPackManifest(chunksDir).catch(() => null);
  if (!kept || kept.archiveSha256 !== p.sha256) {
    throw new UserError(`upload needs the chunks packed by the recorded run in ${chunksDir}, which are gone or changed; start again with --from manifest`);
  }
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += (await fs.stat(path.join(e.parentPath ?? (e as { path?: string }).path ?? dir, e.name))).size;
  }
  return total;
}

function kbOf(v: string | undefined): number {
  if (!v || v === 'absent') return 0;
  const n = Number(v.split(/\s+/)[0]);
  return Number.isFinite(n) ? n : 0;
}
