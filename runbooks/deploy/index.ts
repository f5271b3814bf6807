/**
 * Runbook: deploy a local Chroma persist dir onto a remote volume (seed 000, "Fly Volumes Direct
 * Replace"). Ten steps, in order, one object each in steps/ (title, needs, run, undo, recorded
 * result, plan); each completed step pushes its undo on one compensation stack, which unwinds
 * once, newest first, on failure, Ctrl-C or SIGTERM.
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
 * `.ferry/` and local, lib/engine/state.ts), so `--from STEP` / `--only STEP` resume or repeat
 * part of a run; a step whose needed results are missing refuses (runner `needs`). The remote
 * copy holds ids, checksums, counts and outcomes; the local paths (run dir, snapshot, chunks,
 * source) are in the local copy only, used only inside this run's dir (lib/engine/run-dir.ts) and only
 * when both copies agree. Local work files live in `<work root>/chroma-ferry-<run id>` alone.
 * `--plan` (plan.ts) is the same ten steps' `plan()`.
 */
import { PackAhead, packDirsOf } from '../../lib/archive/pack-ahead.ts';
import { CompensationStack } from '../../lib/engine/compensation.ts';
import { HostUnreachable, UserError } from '../../lib/common/errors.ts';
import { VolumeFullError } from '../../lib/common/volume-full.ts';
import { remoteLayout } from '../../lib/remote/layout.ts';
import { newRunId, openRunDir, parseWorkRoot, removeRunDir, runDirOf } from '../../lib/engine/run-dir.ts';
import { describeError, initialReports, runSteps, selectSteps } from '../../lib/engine/runner.ts';
import { newState, RunbookStateStore } from '../../lib/engine/state.ts';
import { lockOwnerRecord } from '../../lib/volume/lock.ts';
import { commandHints } from '../../lib/cli/command-hint.ts';
import { withReconnect } from '../../lib/volume/deploy-swap.ts';
import { DEPLOY_STEPS, UNDONE_UNVERIFIED, type DeployCtx, type DeployOptions, type DeployStepObject, type DeploySummary } from './context.ts';
import { endPartialRun, loadRecordedRun, restoreRecordedSteps } from './recorded-run.ts';
import { releaseLock } from './lock-release.ts';
import { backup } from './steps/backup.ts';
import { cleanup } from './steps/cleanup.ts';
import { manifest } from './steps/manifest.ts';
import { packageStep } from './steps/package.ts';
import { preflight } from './steps/preflight.ts';
import { reassemble } from './steps/reassemble.ts';
import { restart } from './steps/restart.ts';
import { swap } from './steps/swap.ts';
import { upload } from './steps/upload.ts';
import { verify } from './steps/verify.ts';

export { DEPLOY_STEPS, UNDONE_UNVERIFIED, type DeployOptions, type DeployStep, type DeploySummary } from './context.ts';

/** The deploy, in order. */
export const DEPLOY_STEP_OBJECTS: readonly DeployStepObject[] = [preflight, manifest, backup, packageStep, upload, reassemble, swap, restart, verify, cleanup];

if (DEPLOY_STEP_OBJECTS.map((s) => s.name).join() !== DEPLOY_STEPS.join()) throw new Error('the deploy step objects are not DEPLOY_STEPS, in order');

/** A deploy run's context before its first step (also for tests that run single steps). */
export function newDeployCtx(
  o: DeployOptions,
  r: { runId: string; workRoot: string; store: RunbookStateStore; now?: () => Date; warnings?: string[]; earlyUpload: boolean; selected?: ReadonlySet<string> },
): DeployCtx {
  const layout = remoteLayout(o.host.resolveVolume(o.volume), o.dbDir);
  const now = r.now ?? (() => new Date());
  const summary: DeploySummary = {
    ok: false, runId: r.runId, target: o.host.label, volume: layout.volume, liveDir: layout.live,
    steps: initialReports([...DEPLOY_STEP_OBJECTS]),
    source: { dir: o.source, bytes: 0, collections: 0, records: 0 },
    upload: { method: o.uploader.method, chunksSent: 0, chunksSkipped: 0, bytesSent: 0, bytesSkipped: 0 },
    verified: false, warnings: [...(r.warnings ?? [])], rolledBack: false, rollback: [],
    stateFiles: { remote: r.store.remoteFile, local: r.store.localFile },
  };
  return {
    o, runId: r.runId, layout, stack: new CompensationStack(), workRoot: r.workRoot, runDir: runDirOf(r.workRoot, r.runId), summary,
    lockOwner: lockOwnerRecord(r.runId, 'deploy', { startedAt: now() }), now,
    restartAttempted: false, lockHeld: false, store: r.store, earlyUpload: r.earlyUpload,
    hints: o.hints ?? commandHints(undefined), selected: r.selected ?? new Set(DEPLOY_STEPS),
  };
}

export async function runDeploy(o: DeployOptions): Promise<DeploySummary> {
  const workRoot = parseWorkRoot(o.workDir, o.source);
  const layout = remoteLayout(o.host.resolveVolume(o.volume), o.dbDir);
  const store = new RunbookStateStore(o.host, layout, 'deploy');
  const partial = Boolean(o.from || o.only);
  const selected = selectSteps(DEPLOY_STEPS, { from: o.from, only: o.only }, ['preflight']);
  const first = DEPLOY_STEP_OBJECTS.find((s) => s.name === (o.from ?? o.only));
  const recorded = partial ? await loadRecordedRun(store, o, !first?.needs?.length) : undefined;
  const resumed = recorded?.state;
  const runId = resumed?.runId ?? newRunId();
  const earlyUpload = selected.has('package') && selected.has('upload') && !o.prompter;
  const ctx = newDeployCtx(o, { runId, workRoot, store, warnings: recorded?.warnings, earlyUpload, selected });
  const { summary, runDir } = ctx;
  ctx.resumed = resumed;
  const state = resumed ?? newState('deploy', runId, o.host.label, layout.live, DEPLOY_STEPS);
  state.finished = false;
  delete state.outcome;
  const local = (state.local ??= {});
  if (resumed) await restoreRecordedSteps(ctx, DEPLOY_STEP_OBJECTS, resumed, selected, recorded.noLocal);

  // One save at a time, in call order: the backup step runs alongside others and reports too.
  let saving: Promise<void> = Promise.resolve();
  const save = () => {
    const next = saving.catch(() => undefined).then(async () => {
      // Once released, the remote copy is the next lock holder's: this machine's copy only.
      if (ctx.lockReleased) await store.saveLocal(state);
      else if (ctx.lockHeld) await withReconnect(() => store.save(state));
    });
    saving = next;
    return next;
  };
  /** The closing state write failed: the summary says so (once: not again when it is the run's error). */
  const notSaved = (e: unknown) => {
    const why = describeError(e, o.signal);
    if (why !== summary.error) summary.warnings.push(`the runbook state was not saved: ${why}`);
  };
  const lastSelected = DEPLOY_STEPS.filter((n) => selected.has(n)).at(-1);
  /** A step's "done" in the state: its status, its recorded result and this machine's part. */
  const recordDone = (name: string) => {
    const step = DEPLOY_STEP_OBJECTS.find((s) => s.name === name)!;
    state.steps[name] = 'done';
    if (step.result) state.results[name] = step.result.save(ctx);
    if (step.local) local[name] = step.local.save(ctx);
  };
  const finish = () => {
    state.finished = true;
    state.outcome = summary.verified ? 'deployed and verified' : 'deployed, not verified';
  };
  // The state belongs to the lock holder: the closing state is written before the lock goes, by
  // the cleanup in its own remote command, or (after an unwind) below, before the release.
  ctx.closingStateWrite = () => {
    recordDone('cleanup');
    finish();
    return store.remoteWriteScript(state);
  };
  /** The release the lock's undo left to the run's end (after the closing state write). */
  const releasePendingLock = async () => {
    if (!ctx.lockReleasePending) return;
    try {
      await releaseLock(ctx);
    } catch (e) {
      const why = describeError(e, o.signal);
      const undo = summary.rollback.find((u) => u.name === 'lock');
      if (undo) Object.assign(undo, { ok: false, error: why });
      summary.warnings.push(`the deploy lock was not released (${why}); if no deploy is running, clear it with: ${ctx.hints.unlock()}`);
    }
  };
  const doneWriteJoinsNext = (name: string) => !o.prompter && name !== lastSelected &&
    !DEPLOY_STEP_OBJECTS.some((s) => s.background && (s.name === name || state.steps[s.name] === 'running'));
  let opened = false;
  let keepRunDir = false;
  try {
    await openRunDir(runDir, o.source);
    opened = true;
    // A new run that packs and uploads at once: the snapshot and the packing start now, alongside
    // the preflight's round trips (local work files only; the steps await them in their turn).
    if (!resumed && earlyUpload && selected.has('manifest')) {
      ctx.packAhead = new PackAhead({ source: o.source, ...packDirsOf(runDir), chunkSize: o.chunkSize, signal: o.signal });
      let settle = () => {};
      ctx.uploadUnderway = { promise: new Promise<void>((res) => { settle = res; }), settle: () => settle() };
    }
    const r = await runSteps([...DEPLOY_STEP_OBJECTS], ctx, {
      output: o.output, signal: o.signal, stack: ctx.stack, reports: summary.steps, prompter: o.prompter, selected,
      onStatus: async (name, status) => {
        state.steps[name] = status;
        const step = DEPLOY_STEP_OBJECTS.find((s) => s.name === name)!;
        if (status === 'failed') ctx.uploadUnderway?.settle(); // a backup waiting for the upload goes on (and is joined)
        if (name === 'preflight' && status !== 'running') ctx.packAhead?.fullSpeed();
        if (status === 'done') {
          recordDone(name);
          // One remote write for "N done, N+1 running": the next step's start follows at once,
          // with nothing done in between (no prompt, no background step to join).
          if (doneWriteJoinsNext(name)) return;
          // The last step's "done" is written by the closing write that follows at once.
          if (name === lastSelected) return;
        }
        // With the packing started ahead, the package step's start is written with these: the
        // manifest only awaits the snapshot taken meanwhile (nothing remote), and the backup
        // starts its remote work once the upload is under way, after that write.
        if (status === 'running' && ctx.packAhead && (name === 'manifest' || step.background)) return;
        await save(); // from the moment the lock is held: the state belongs to the lock holder
      },
    });
    summary.ok = r.ok;
    summary.rollback = r.rollback;
    if (r.ok) {
      const finished = summary.steps.find((st) => st.name === 'cleanup')!.status === 'done';
      state.finished = finished;
      if (finished) {
        finish();
        await save().catch(notSaved); // the cleanup wrote the remote copy before the release: this machine's copy
      } else {
        await endPartialRun(ctx, state, () => save().catch(notSaved));
      }
      // Not finished (`--only`, `--from` stopping early): later steps may need the snapshot or chunks.
      keepRunDir = !finished;
    } else {
      summary.error = describeError(r.error, o.signal);
      const note = o.uploader.noteAfterFailure?.();
      if (note) summary.warnings.push(note);
      summary.rolledBack = r.rollback.some((u) => u.name === 'swap' && u.ok);
      for (const u of r.rollback) if (u.ok && u.name in state.steps) state.steps[u.name] = 'undone';
      // The renames were reversed even when the old data's restart or check failed: a later
      // rollback restarts and checks that data, never one version further back.
      if (ctx.swapReversed) state.steps.swap = 'undone';
      state.finished = r.rollback.every((u) => u.ok) && !o.signal.aborted;
      state.outcome = summary.rolledBack ? 'failed, rolled back'
        : ctx.swapReversed && ctx.swap ? UNDONE_UNVERIFIED
          : ctx.swap ? 'failed after the swap' : 'failed before the swap; the live dir is unchanged';
      if (state.outcome === UNDONE_UNVERIFIED) {
        summary.warnings.push(`old data restored; server not verified: restart and check it with: ${ctx.hints.rollback()}`);
      }
      await save().catch(notSaved);
      await releasePendingLock();
      // Its extractor (started with the upload) no longer waits for chunks that will not come.
      if (state.steps.reassemble !== 'done') await ctx.shipper?.stopExtractor();
      // Chunks packed and not yet used: kept so that `--from upload` need not pack again.
      keepRunDir = !summary.rolledBack && state.steps.package === 'done';
      if (keepRunDir) summary.warnings.push(`packaged chunks kept in ${runDir} for --from upload`);
      // Refused before the swap, or refused by the preflight of a `--from` run (before this run
      // held the lock, so it changed nothing, the recorded run's swap included): a one-line user
      // error (its exit code says whether reconciliation renamed anything). Once this run's swap
      // started, never. A full volume part-way (VolumeFullError) is no refusal: the run ends with its summary;
      // nor is a connection lost once the upload began (the summary says what was sent and what the rerun skips).
      const lostMidUpload = r.error instanceof HostUnreachable && ctx.shipper !== undefined;
      if (r.error instanceof UserError && !(r.error instanceof VolumeFullError) && !lostMidUpload && (!ctx.swapStarted || !ctx.lockHeld)) throw r.error;
    }
  } finally {
    await releasePendingLock(); // a run that ended by an exception of its own: the lock goes all the same
    await ctx.packAhead?.stop(); // a run that ended before its package step: nothing of it left writing
    if (opened && !keepRunDir) await removeRunDir(runDir, o.source).catch(() => undefined);
  }
  return summary;
}

