/** 3. swap: live -> NAME.failed-<stamp>, the chosen data -> live. Renames only. Undo: the reverse renames, then a restart. */
import { parseKv } from '../../../lib/remote/scripts.ts';
import { utcStamp } from '../../../lib/remote/layout.ts';
import { failedDirPath, restoreSwapScript, undoRestoreSwapScript } from '../../../lib/remote/rollback-scripts.ts';
import { done, skipped } from '../../../lib/engine/runner.ts';
import { retireSwapJournalScript, stampDataIdScript } from '../../../lib/volume/deploy-swap.ts';
import { armUndo, type Step } from '../../../lib/engine/step.ts';
import { oldDataIdOf, restartOptions, type RollbackCtx, type RollbackFacts, type RollbackPlanCtx } from '../context.ts';

function sourceOf(f: RollbackFacts): string {
  if (!f.source) throw new Error('nothing chosen to roll back to (the preflight has not run)');
  return f.source;
}

const scripts = {
  failed: (f: RollbackFacts) => failedDirPath(f.layout, utcStamp(f.now())),
  swap: (f: RollbackFacts, failed: string) => restoreSwapScript(f.layout, sourceOf(f), failed),
  unswap: (f: RollbackFacts, failed: string, hadLive: boolean) => undoRestoreSwapScript(f.layout, sourceOf(f), failed, hadLive),
  // A completed swap's journal no longer describes the volume once NAME is replaced (retired
  // first: a crash in between leaves unverified data live, which reconciles to this rollback).
  retire: (f: RollbackFacts) => retireSwapJournalScript(f.layout),
  // NAME.old from before data ids gets one, so that it can be recorded as the verified data.
  stamp: (f: RollbackFacts) => stampDataIdScript(sourceOf(f), oldDataIdOf(f)),
};

export const swap: Step<RollbackCtx, RollbackPlanCtx> = {
  name: 'swap',
  title: 'swap: live -> NAME.failed-<stamp>, previous data -> live',
  undoText: 'the restored dir back where it came from, the replaced live dir back as live; restart',

  async run(c) {
    const { o } = c;
    if (c.mode === 'live') return skipped(`${c.layout.live} already holds the data to serve`);
    await o.host.run(scripts.retire(c), { signal: o.signal });
    await o.host.run(scripts.stamp(c), { signal: o.signal });
    const failed = scripts.failed(c);
    c.failed = failed;
    // Renames only, never cancelled half-way.
    const kv = parseKv((await o.host.run(scripts.swap(c, failed))).stdout);
    c.hadLive = kv.get('had_live') === 'yes';
    if (c.hadLive) c.summary.keptAs = failed;
    armUndo(c.stack, swap, c);
    o.signal.throwIfAborted();
    return done(c.hadLive ? `current data kept as ${failed}` : 'no live dir was there');
  },

  async undo(c) {
    await c.o.host.run(scripts.unswap(c, c.failed!, c.hadLive ?? false));
    if (c.restartAttempted) await c.o.host.restart(restartOptions(c));
  },

  plan(p) {
    return {
      commands: [p.remote(scripts.retire(p)), p.remote(scripts.stamp(p)), p.remote(scripts.swap(p, scripts.failed(p)), 'had_live= (yes: the replaced data is kept in the .failed dir)')],
      notes: [],
    };
  },
};

export const failedDirOf = scripts.failed;
