/**
 * 1. preflight: source, target, tools, free space, lock. Undo: release the lock.
 * Nothing is written before the lock is held; a refusal here changes nothing (exit 2).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { ChromaAuthError, listCollectionCounts, type ServedCollection } from '../../../lib/chroma/http.ts';
import { chromaVersionPlan, startChromaVersionCheck } from '../../../lib/chroma/version-check.ts';
import { expectedCollectionsOf } from '../../../lib/volume/deployed-manifest.ts';
import { awaitedLater } from '../../../lib/common/awaited-later.ts';
import { UserError } from '../../../lib/common/errors.ts';
import { lockScript, probeScript } from '../../../lib/remote/scripts.ts';
import { done, selectSteps } from '../../../lib/engine/runner.ts';
import { nextStep } from '../../../lib/engine/state.ts';
import { armUndo, type Step } from '../../../lib/engine/step.ts';
import { formatBytes } from '../../../lib/common/units.ts';
import { freeMib, neededMib, volumeFullLine } from '../../../lib/common/volume-full.ts';
import { checkVolume } from '../../../lib/volume/check.ts';
import { describeLockHolder, tryVolumeLock } from '../../../lib/volume/lock.ts';
import { commandInspectScript, reconcileBeforeCommand } from '../../../lib/volume/deploy-swap.ts';
import { reconcile } from '../../../lib/volume/reconcile.ts';
import { inspectVolume } from '../../../lib/volume/volume-reconciler.ts';
import { checkServedDir, servedDirExpectation, servedDirScript } from '../../../lib/volume/served-dir-check.ts';
import { DEPLOY_STEPS, recordOf, type DeployCtx, type DeployFacts, type DeployPlanCtx } from '../context.ts';
import { adoptReconciledSwap, checkRecordedRun } from '../recorded-run.ts';

/** Counts served before the swap: what an undo must bring back. null: the server did not answer (or no --health-url). */
type PreflightResult = { preDeploy: ServedCollection[] | null };
type PreflightLocal = { source: string; runDir: string };

/** Free space the deploy needs: incoming archive (<= source size) + extraction (source size) + the backup of the live dir. */
function neededKb(sourceBytes: number, liveKb: number): number {
  return Math.ceil((sourceBytes * 2.05) / 1024) + liveKb;
}

const scripts = {
  probe: (f: DeployFacts) => probeScript(f.layout),
  lock: (f: DeployFacts) => lockScript(f.layout, f.lockOwner),
  /** The look at the volume reconciliation starts with. */
  inspect: (f: DeployFacts) => commandInspectScript(f.layout),
};

export const preflight: Step<DeployCtx, DeployPlanCtx, PreflightResult, PreflightLocal> = {
  name: 'preflight',
  title: 'preflight: source, target, tools, free space, lock',
  undoText: 'release the lock (unlock script with this run id)',
  undoName: 'lock',

  async run(c, progress) {
    const { o, layout } = c;
    progress(`probing ${o.host.label}`);
    // The read-only looks start together (each is a round trip to the remote or the server; the
    // source is read here); they are judged below one at a time, in this order, so the problem
    // reported is the one a look-after-look run would report first. Nothing is written before the lock.
    // The version check's remote read goes first: the longest look (python3 reading the live
    // dir's migrations) gets the first shell on the connection.
    const swaps = !c.resumed && c.selected.has('swap');
    const version = awaitedLater(startChromaVersionCheck(c, progress));
    const bytes = awaitedLater(dirBytes(o.source));
    const volume = awaitedLater(checkVolume(o.host, layout, o.signal));
    const counts = o.healthUrl && !c.preDeploy ? awaitedLater(listCollectionCounts(o.healthUrl)) : undefined;
    // Then the served-dir look, in the volume look's shell (a shell of its own would cost the far
    // side one more login at the busiest moment), and the uploads' session starts.
    const volumeLooked = volume.then(() => undefined, () => undefined);
    const served = o.healthUrl && swaps ? awaitedLater(volumeLooked.then(() => o.host.run(servedDirScript(layout), { signal: o.signal }))) : undefined;
    if (c.selected.has('upload')) void volumeLooked.then(() => o.uploader.warmUp?.()); // the first chunk is sent after the lock
    c.summary.source.bytes = await bytes;
    const probe = await volume;
    if (probe.get('writable') !== 'yes') throw new UserError(`volume ${layout.volume} on ${o.host.label} is not writable by this user`);
    const availKb = Number((probe.get('df') ?? '').split(/\s+/)[3]);
    const needKb = neededKb(c.summary.source.bytes, kbOf(probe.get('live')));
    if (Number.isFinite(availKb) && availKb < needKb) {
      // The one wording of a full volume (lib/common/volume-full.ts); refused before any change (exit 2).
      const where = `${layout.volume} on ${o.host.label}: archive + extraction + backup`;
      throw new UserError(volumeFullLine(freeMib(availKb * 1024), neededMib(needKb * 1024), where, 'free space or lower --keep-backups'));
    }
    await o.uploader.preflight?.(o.signal);
    let serverDown: UserError | undefined;
    if (counts) {
      try {
        c.preDeploy = await counts;
      } catch (e) {
        // A server that refuses us now would fail the verify after the swap: refused before any change.
        if (e instanceof ChromaAuthError) throw new UserError(e.message);
        // A new run that will swap out a live dir: without the server's answer neither the deploy
        // nor its rollback can be verified, so refuse now, before anything changed.
        const swapsLive = probe.get('live') !== 'absent' && !c.resumed && selectSteps(DEPLOY_STEPS, { from: o.from, only: o.only }).has('swap');
        if (swapsLive && !o.allowServerDown) {
          serverDown = new UserError(
            `the server at ${o.healthUrl} does not answer before the deploy (${e instanceof Error ? e.message : String(e)}): ` +
              'start it or fix --health-url, or pass --allow-server-down to deploy anyway',
          );
          // A lock or an unsettled volume (a crash mid-deploy) explains a broken server better: the
          // lock and the reconciliation below refuse with their own line; else refused here, nothing changed.
          if (!(await volumeNeedsAttention(c))) throw serverDown;
        } else {
          c.summary.warnings.push(`the server at ${o.healthUrl} did not answer before the deploy: rollback can check only that it answers`);
        }
      }
    }
    // The dir to be replaced is the dir being served (a process holds its chroma.sqlite3 open).
    const servedDir = await checkServedDir({ host: o.host, layout, healthUrl: o.healthUrl, serverDown: !c.preDeploy, swaps, summary: c.summary, needsAttention: () => volumeNeedsAttention(c), signal: o.signal, started: served });
    // Can the server open the source's data? Refused here, before the lock (nothing changed yet).
    (await version)();
    const lock = await tryVolumeLock(o.host, layout, c.runId, 'deploy', o.signal, c.lockOwner);
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
    armUndo(c.stack, preflight, c);
    // The volume is the truth: an interrupted swap is finished (this run's) or reversed first, and
    // what it cannot settle (unverified data live, a missing NAME) refuses here, before this run's
    // state is written (so refusing cannot erase the record of the run that needs finishing).
    // Both copies of the recorded run's state, read once (the reconciliation does not write them).
    const stored = c.resumed ? undefined : await c.store.loadBoth(o.signal).catch(() => undefined);
    const recorded = c.resumed ?? stored?.remote ?? stored?.local ?? null;
    const rec = await reconcileBeforeCommand(o.host, layout, { command: 'deploy', runId: c.runId, recordedDeployRunId: recorded?.runId, hints: c.hints, signal: o.signal });
    c.summary.warnings.push(...rec.warnings);
    if (c.resumed) adoptReconciledSwap(c, rec);
    if (serverDown) throw serverDown;
    await servedDir.afterReconcile();
    c.lockHeld = true;
    if (!c.resumed) await checkRecordedRun(c, stored);
    return done(`${formatBytes(c.summary.source.bytes)} source, ${formatBytes(availKb * 1024)} free on the volume${adopted ? `; lock of run ${c.runId} taken over` : ''}`);
  },

  async undo(c) {
    // The run releases the lock at its end, once its closing state is written (lock-release.ts).
    c.lockReleasePending = true;
  },

  plan(p) {
    const version = chromaVersionPlan(p);
    return {
      commands: [
        ...version.commands,
        p.remote(scripts.probe(p), `missing= is empty, volume=dir, writable=yes; df shows free space for about ${Math.ceil((p.packed.inputBytes * 2.05) / 1048576)} MiB plus the live dir`),
        ...(p.o.healthUrl ? [p.remote(servedDirScript(p.layout), servedDirExpectation(p.layout))] : []),
        p.remote(scripts.lock(p), 'lock=acquired (otherwise another run holds the lock: it exits non-zero, stop here)'),
        p.remote(scripts.inspect(p), 'no journal= line, or one with "phase":"done" or "reversed"; NAME holds the verified= data (otherwise stop: chroma-ferry unlock finishes or reverses an interrupted swap)'),
        p.local('create the local work dir (this run\'s own dir in the work root)', ['mkdir', '-p', p.runDir]),
      ],
      notes: version.notes,
    };
  },

  result: {
    save: (c) => ({ preDeploy: c.preDeploy ?? null }),
    parse(raw) {
      const r = recordOf(raw, 'preflight');
      if (r.preDeploy === null || r.preDeploy === undefined) return { preDeploy: null };
      const cols = expectedCollectionsOf({ collections: r.preDeploy });
      if (!cols) throw new UserError('the recorded preflight result (counts served before the deploy) is not valid; run a new deploy');
      return { preDeploy: r.preDeploy as ServedCollection[] };
    },
    load(c, r) {
      // Counts served before the recorded run's swap: what a rollback must bring back.
      if (r.preDeploy) c.preDeploy = r.preDeploy;
    },
  },

  local: {
    save: (c) => ({ source: c.o.source, runDir: c.runDir }),
  },
};

/** The volume holds a lock or what reconciliation would act on (read only, nothing changed). */
async function volumeNeedsAttention(c: DeployCtx): Promise<boolean> {
  const facts = await inspectVolume(c.o.host, c.layout, { signal: c.o.signal }).catch(() => undefined);
  return !facts || facts.lock !== undefined || reconcile(facts, { runId: c.runId, name: c.layout.name }).action !== 'clean';
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
