/**
 * 7. swap: NAME.old to the trash, NAME -> NAME.old, NAME.new -> NAME: journaled on the volume and
 * run by a worker detached from the connection (lib/volume/swap-journal.ts). Never cancelled
 * half-way; once started, how it ended is read from the volume (a lost connection reconnects, an
 * interrupted worker is finished by this run). Undo: by the journal, the renames reversed, the
 * rejected dir kept as NAME.failed-<stamp>; then restart and check the old counts (an app: it
 * answers and holds the old data's file).
 */
import { UserError } from '../../../lib/common/errors.ts';
import { done } from '../../../lib/engine/runner.ts';
import { armUndo, type Step } from '../../../lib/engine/step.ts';
import { isDataId } from '../../../lib/volume/data-id.ts';
import { swapIn, swapInScript, undoSwap } from '../../../lib/volume/deploy-swap.ts';
import type { SwapIds } from '../../../lib/volume/swap-journal.ts';
import { waitUntilServing, type ExpectedCollection } from '../../../lib/serving/verify-serving.ts';
import { checkAppServes } from '../../../lib/serving/app-health.ts';
import { nextDataIdOf, recordOf, restartOptions, type DeployCtx, type DeployFacts, type DeployPlanCtx, type SwapResult } from '../context.ts';

const scripts = {
  swap: (f: DeployFacts) => swapInScript(f.layout, f.runId, nextDataIdOf(f), f.now()),
};

export const swap: Step<DeployCtx, DeployPlanCtx, SwapResult> = {
  name: 'swap',
  title: 'swap: NAME -> NAME.old, NAME.new -> NAME',
  needs: ['reassemble'],
  waitFor: ['backup'],
  undoText: 'by the journal: NAME -> NAME.new -> NAME.failed-<stamp>, NAME.old -> NAME, the trashed .old back; then restart and check the old counts',

  async run(c, progress) {
    const { o, layout } = c;
    c.swapStartedAt = performance.now();
    // A resumed run whose swap reconciliation found complete on the volume (preflight).
    if (c.swap) return done('already swapped on the volume (completed by reconciliation)');
    const nextId = nextDataIdOf(c);
    const out = await swapIn(o.host, layout, c.runId, nextId, {
      startedAt: c.now(),
      onReconnect: (line) => progress(line),
      onLaunch: () => {
        // From here on the swap has started: its undo goes by the journal, whatever happens next.
        c.swapStarted = true;
        c.swap = { hadLive: true, movedOld: false, ids: { next: nextId } };
        armUndo(c.stack, swap, c);
      },
    });
    c.swap = { hadLive: out.ids.live !== undefined, movedOld: out.ids.old !== undefined, ids: out.ids };
    if (out.note) c.summary.warnings.push(`swap: ${out.note}`);
    if (out.status !== 'done') throw new Error(`the swap did not take place (${out.note ?? 'reversed on the remote'}): old data live; server not restarted`);
    o.signal.throwIfAborted();
    return done(c.swap.hadLive ? `${layout.live} -> ${layout.old}` : 'first deploy: no previous live dir');
  },

  /** By the journal: the old data back, the new kept as NAME.failed-STAMP; restarted and checked. */
  async undo(c) {
    const { o } = c;
    const swapped = c.swap!;
    const r = await undoSwap(o.host, c.layout, c.runId, swapped.ids);
    c.swapReversed = r.restored;
    if (r.failedDir) c.summary.failedDir = r.failedDir;
    // From here on the renames are undone: a failure is of the old data's restart or check (the
    // run's outcome says "old data restored; server not verified").
    if (!c.restartAttempted) return;
    await o.host.restart(restartOptions(c));
    if (o.healthUrl && swapped.hadLive) {
      const expected: ExpectedCollection[] = c.preDeploy ?? [];
      const check = await waitUntilServing(o.healthUrl, expected, { timeoutMs: o.healthTimeoutMs, settleMs: c.preDeploy ? 5000 : 0 });
      if (c.preDeploy && check.mismatches.length) {
        throw new Error(`old data is back but the server does not serve it as before: ${check.mismatches.join('; ')}`);
      }
    } else if (o.appHealthUrl && swapped.hadLive) {
      // An app that embeds Chroma: it answers again and holds the old data's file (no manifest of it to count against).
      const r = await checkAppServes({ url: o.appHealthUrl, remote: { host: o.host, layout: c.layout }, timeoutMs: o.healthTimeoutMs, noCountsWhy: 'the old data has no manifest' });
      if (!r.healthy) throw new Error(`old data is back but the app does not serve it: ${r.problems.join('; ')}`);
    }
  },

  plan(p) {
    return {
      commands: [p.remote(scripts.swap(p), 'live_id= and old_id= (what NAME and NAME.old held), then phase=done; otherwise stop: the next chroma-ferry command finishes or reverses it')],
      notes: [`journaled: .ferry/swap-journal-${p.layout.name}.json says where each dir is at every point`],
    };
  },

  result: {
    save: (c) => ({ ...c.swap! }),
    parse(raw) {
      const r = recordOf(raw, 'swap');
      const ids = r.ids as Partial<SwapIds> | undefined;
      const idsOk = ids === undefined || (typeof ids === 'object' && ids !== null && isDataId(ids.next)
        && (ids.live === undefined || isDataId(ids.live)) && (ids.old === undefined || isDataId(ids.old)));
      if (typeof r.hadLive !== 'boolean' || typeof r.movedOld !== 'boolean' || !idsOk) {
        throw new UserError('the recorded swap result (had_live, moved_old, data ids) is not valid; see what the volume holds (chroma-ferry backups), then run chroma-ferry rollback');
      }
      const out: SwapResult = { hadLive: r.hadLive, movedOld: r.movedOld, ids: { next: '' } };
      if (ids) {
        out.ids = { next: ids.next! };
        if (ids.live !== undefined) out.ids.live = ids.live;
        if (ids.old !== undefined) out.ids.old = ids.old;
      }
      return out;
    },
    load(c, r) {
      // A result recorded before ids: the new data's id is this run's.
      c.swap = r.ids.next ? r : { ...r, ids: { next: nextDataIdOf(c) } };
      c.swapStarted = true;
      // The recorded run may have restarted the server on the new data: an undo restarts it again.
      c.restartAttempted = true;
    },
  },
};
