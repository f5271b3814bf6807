/**
 * 7. swap: NAME.old to the trash, NAME -> NAME.old, NAME.new -> NAME. Renames only, never
 * cancelled half-way. Undo: the new dir kept as NAME.failed-<stamp>, the old one back, the
 * trashed .old back; then restart and check the old counts.
 */
import { UserError } from '../../../lib/errors.ts';
import { parseKv, swapScript, unswapScript } from '../../../lib/remote-scripts.ts';
import { utcStamp } from '../../../lib/remote-layout.ts';
import { done } from '../../../lib/runbook-runner.ts';
import { armUndo, type Step } from '../../../lib/runbook-step.ts';
import { waitUntilServing, type ExpectedCollection } from '../../../lib/verify-serving.ts';
import { recordOf, restartOptions, trashOf, type DeployCtx, type DeployFacts, type DeployPlanCtx, type SwapResult } from '../context.ts';

const scripts = {
  swap: (f: DeployFacts) => swapScript(f.layout, trashOf(f)),
  unswap: (f: DeployFacts, swap: SwapResult) =>
    unswapScript(f.layout, trashOf(f), `${f.layout.name}.failed-${utcStamp(f.now())}`, swap.hadLive, swap.movedOld),
};

export const swap: Step<DeployCtx, DeployPlanCtx, SwapResult> = {
  name: 'swap',
  title: 'swap: NAME -> NAME.old, NAME.new -> NAME',
  needs: ['reassemble'],
  waitFor: ['backup'],
  undoText: 'NAME -> NAME.failed-<stamp>, NAME.old -> NAME, the trashed .old back; then restart and check the old counts',

  async run(c) {
    const { o, layout } = c;
    c.swapStartedAt = performance.now();
    // Renames only, and never cancelled half-way: a signal is honoured once the undo is on the stack.
    const kv = parseKv((await o.host.run(scripts.swap(c))).stdout);
    c.swap = { hadLive: kv.get('had_live') === 'yes', movedOld: kv.get('moved_old') === 'yes' };
    armUndo(c.stack, swap, c);
    o.signal.throwIfAborted();
    return done(c.swap.hadLive ? `${layout.live} -> ${layout.old}` : 'first deploy: no previous live dir');
  },

  /** The new dir kept as NAME.failed-STAMP, the old one back, restarted and checked. */
  async undo(c) {
    const { o } = c;
    const swapped = c.swap!;
    const r = parseKv((await o.host.run(scripts.unswap(c, swapped))).stdout);
    c.summary.failedDir = r.get('failed');
    if (!c.restartAttempted) return;
    await o.host.restart(restartOptions(c));
    if (o.healthUrl && swapped.hadLive) {
      const expected: ExpectedCollection[] = c.preDeploy ?? [];
      const check = await waitUntilServing(o.healthUrl, expected, { timeoutMs: o.healthTimeoutMs, settleMs: c.preDeploy ? 5000 : 0 });
      if (c.preDeploy && check.mismatches.length) {
        throw new Error(`old data is back but the server does not serve it as before: ${check.mismatches.join('; ')}`);
      }
    }
  },

  plan(p) {
    return {
      commands: [p.remote(scripts.swap(p), 'moved_old= and had_live= lines (keep them: the undo needs them)')],
      notes: [],
    };
  },

  result: {
    save: (c) => ({ ...c.swap! }),
    parse(raw) {
      const r = recordOf(raw, 'swap');
      if (typeof r.hadLive !== 'boolean' || typeof r.movedOld !== 'boolean') {
        throw new UserError('the recorded swap result (had_live, moved_old) is not valid; see what the volume holds (chroma-ferry backups), then run chroma-ferry rollback');
      }
      return { hadLive: r.hadLive, movedOld: r.movedOld };
    },
    load(c, r) {
      c.swap = r;
      // The recorded run may have restarted the server on the new data: an undo restarts it again.
      c.restartAttempted = true;
    },
  },
};
