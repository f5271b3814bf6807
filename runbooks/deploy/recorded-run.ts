/**
 * The deploy's runbook state across runs: the recorded run `--from`/`--only` continue (refused
 * when there is none, when it is of another source, or when its two copies disagree), its
 * completed steps' results taken back into this run, the guard against a new deploy over
 * unverified data, and how a partial run ends.
 */
import path from 'node:path';
import { UserError } from '../../lib/common/errors.ts';
import { isRunId, pathInRunDir, removeRunDir, runDirOf } from '../../lib/engine/run-dir.ts';
import type { StepStatus } from '../../lib/engine/runner.ts';
import { nextStep, stateDifference, type RunbookState, type RunbookStateStore, type StoredStates } from '../../lib/engine/state.ts';
import { armUndo } from '../../lib/engine/step.ts';
import type { BeforeCommand } from '../../lib/volume/deploy-swap.ts';
import { DEPLOY_STEPS, nextDataIdOf, type DeployCtx, type DeployOptions, type DeployStepObject } from './context.ts';
import { swap } from './steps/swap.ts';
import { releaseLock } from './lock-release.ts';

/** The recorded run `--from`/`--only` continues, and why this machine's local results of it are not used (if not). */
export interface RecordedRun {
  /** Statuses and results from the remote copy (else this machine's); local paths only from this machine's copy of the same run. */
  state: RunbookState;
  noLocal?: string;
  warnings: string[];
}

/** This machine's recorded local part of the preflight: the source and run dir of that run. */
function preflightLocal(state: RunbookState | null | undefined): { source?: string; runDir?: string } {
  const l = state?.local?.preflight;
  if (!l || typeof l !== 'object') return {};
  const { source, runDir } = l as Record<string, unknown>;
  return { source: typeof source === 'string' ? source : undefined, runDir: typeof runDir === 'string' ? runDir : undefined };
}

/**
 * The recorded run `--from`/`--only` continues; refuses when there is none, when it is for another
 * source, or when the remote copy of its state disagrees with this machine's (never obeyed).
 */
export async function loadRecordedRun(store: RunbookStateStore, o: DeployOptions, canStartNew: boolean): Promise<RecordedRun | undefined> {
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
  const recordedSource = preflightLocal(mine).source;
  if (recordedSource !== undefined && path.resolve(recordedSource) !== path.resolve(o.source)) {
    throw new UserError(`${flag}: the recorded deploy (run ${state.runId}) is of ${recordedSource}, not ${o.source}; pass --source ${recordedSource} or run a new deploy`);
  }
  return { state: { ...state, local: mine?.local ?? {} }, noLocal, warnings };
}

/**
 * Undos of the recorded run's completed steps that this run takes over, waiting for this run to
 * hold the volume lock (`armRecordedUndos`): until then they must not run (a run refused by its
 * preflight changes nothing), and once armed they sit above the lock's release, so an unwind runs
 * them while the lock is still held.
 */
const awaitingLock = new WeakMap<DeployCtx, DeployStepObject[]>();

/**
 * Steps before the selection that the recorded run completed: their results come back into this
 * run (each checked by its step), and the undo of those that changed the remote is kept for
 * `armRecordedUndos` (once the preflight holds the lock). Local work files (snapshot, chunks) only when inside this run's dir; a selected step
 * that needs some that are not refuses here, before anything is written.
 */
export async function restoreRecordedSteps(
  c: DeployCtx, steps: readonly DeployStepObject[], state: RunbookState, selected: ReadonlySet<string>, noLocal: string | undefined,
): Promise<void> {
  // Every recorded result is checked before any is used: a damaged one refuses with nothing taken over.
  const taken: { step: DeployStepObject; result: unknown; earlier: boolean }[] = [];
  for (const step of steps) {
    const st: StepStatus = state.steps[step.name] ?? 'not run';
    const raw = state.results[step.name];
    if (step.name === 'preflight') {
      // Always run again; its recorded result (the counts served before the swap) is kept.
      if (raw !== undefined && step.result) taken.push({ step, result: step.result.parse(raw), earlier: false });
      continue;
    }
    if (selected.has(step.name)) continue;
    if (st === 'done' && raw !== undefined) {
      taken.push({ step, result: step.result?.parse(raw), earlier: true });
    } else if (st === 'skipped') {
      const report = c.summary.steps.find((r) => r.name === step.name)!;
      report.status = 'skipped';
      report.note = `in run ${state.runId}`;
    }
  }
  const undos: DeployStepObject[] = [];
  for (const { step, result, earlier } of taken) {
    if (step.result) step.result.load(c, result);
    if (!earlier) continue;
    if (step.undo) undos.push(step);
    const report = c.summary.steps.find((r) => r.name === step.name)!;
    report.status = 'earlier run';
    report.note = `run ${state.runId}`;
  }
  const flag = c.o.from ? `--from ${c.o.from}` : `--only ${c.o.only}`;
  const restored = (name: string) => c.summary.steps.find((r) => r.name === name)!.status === 'earlier run';
  for (const consumer of steps.filter((s) => selected.has(s.name))) {
    for (const ownerName of consumer.needsLocal ?? []) {
      const owner = steps.find((s) => s.name === ownerName);
      const files = owner?.local?.workFiles;
      if (!owner || !files || !restored(owner.name)) continue;
      const recorded = noLocal ? { refused: noLocal } : await pathInRunDir((state.local?.[owner.name] as Record<string, unknown> | undefined)?.[files.key], c.runDir);
      if ('refused' in recorded) {
        throw new UserError(
          `${flag}: ${consumer.name} needs ${files.what(state.runId)} in this run's work dir ${c.runDir}, and ${recorded.refused}; ` +
            `${files.redo} (or pass the --work-dir run ${state.runId} used)`,
        );
      }
      files.use(c, recorded.path);
    }
  }
  awaitingLock.set(c, undos);
}

/** The recorded run's undos taken over by this run, in step order, on the stack (above the lock's release, armed before). */
function armRecordedUndos(c: DeployCtx): void {
  for (const step of awaitingLock.get(c) ?? []) armUndo(c.stack, step, c);
  awaitingLock.delete(c);
}

/** The recorded run swapped in data that was never verified. */
function awaitsVerify(s: RunbookState): boolean {
  return s.steps.swap === 'done' && s.steps.verify !== 'done' && s.steps.verify !== 'skipped';
}

/**
 * Warns when the two copies of the recorded state differ. Also removes the run dir a failed
 * earlier run of this machine kept for `--from upload` (a new run packs again): only one this
 * machine's state records, named for its run id in this work root. (A new deploy over unverified
 * data is refused by the volume's reconciliation in the preflight, never by the state alone.)
 */
export async function checkRecordedRun(c: DeployCtx, stored?: StoredStates): Promise<void> {
  const { o } = c;
  const { remote, local } = stored ?? await c.store.loadBoth(o.signal);
  if (remote && local && remote.runId === local.runId) {
    const diff = stateDifference(remote, local);
    if (diff) c.summary.warnings.push(`the remote state of run ${remote.runId} differs from this machine's copy (${diff}); only this new run's state is kept`);
  }
  if (local && local.runId !== c.runId && isRunId(local.runId)) {
    const kept = runDirOf(c.workRoot, local.runId);
    if (preflightLocal(local).runDir === kept) await removeRunDir(kept, o.source).catch(() => undefined);
  }
}

/**
 * A resumed run after the volume's reconciliation (the preflight holds the lock, its release on
 * the stack): its swap, complete on the volume though the state does not say so (a crash right
 * after the renames), counts as done; a swap the state calls done whose data is no longer live
 * (rolled back since) leaves nothing to continue. Then the recorded run's undos this run takes
 * over go on the stack, above the lock's release, in step order (the swap found complete last).
 */
export function adoptReconciledSwap(c: DeployCtx, rec: BeforeCommand): void {
  const report = c.summary.steps.find((r) => r.name === 'swap')!;
  const j = rec.ownSwap;
  let adopted = false;
  if (!c.swap && j && c.packed && j.ids.next === nextDataIdOf(c)) {
    c.swap = { hadLive: j.ids.live !== undefined, movedOld: j.ids.old !== undefined, ids: j.ids };
    c.swapStarted = true;
    c.restartAttempted = true;
    adopted = true;
    c.resumed!.steps.swap = 'done';
    c.resumed!.results.swap = swap.result!.save(c);
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
  armRecordedUndos(c);
  if (adopted) armUndo(c.stack, swap, c);
}

/**
 * `--from`/`--only` ended before cleanup: the state saved (`save`), then the lock released unless
 * swapped data still awaits its verify (never a state write after the lock went).
 */
export async function endPartialRun(c: DeployCtx, state: RunbookState, save: () => Promise<void>): Promise<void> {
  await save();
  if (awaitsVerify(state)) {
    c.summary.warnings.push(`the swapped-in data is not verified yet: the lock stays; continue with --from ${nextStep(state, DEPLOY_STEPS) ?? 'verify'}`);
    return;
  }
  await releaseLock(c);
  const next = nextStep(state, DEPLOY_STEPS);
  if (next) c.summary.warnings.push(`stopped before ${next}: continue with --from ${next}`);
}
