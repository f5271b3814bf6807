/**
 * 3. swap: live -> NAME.failed-<stamp>, the chosen data -> live. Renames only, journaled and run
 * by the detached worker of the deploy's swap (lib/volume/swap-journal.ts): a dropped connection
 * or a killed CLI cannot stop it half-way, and the next command finishes or reverses it by its
 * journal. Undo: by the journal, the renames reversed; then a restart.
 */
import { utcStamp } from '../../../lib/remote/layout.ts';
import { failedDirPath } from '../../../lib/remote/rollback-scripts.ts';
import { done, skipped } from '../../../lib/engine/runner.ts';
import { reverseSwap, rollbackSwapIn } from '../../../lib/volume/deploy-swap.ts';
import { rollbackSwapScript, type RollbackSwap } from '../../../lib/volume/swap-journal.ts';
import { armUndo, type Step } from '../../../lib/engine/step.ts';
import { oldDataIdOf, restartOptions, restoredIdOf, type RollbackCtx, type RollbackFacts, type RollbackPlanCtx } from '../context.ts';

/** What the swap puts back (NAME.old or the staged backup) and the stamp of NAME.failed-<stamp>, by the run's clock at `at`. */
function putBack(f: RollbackFacts, at: Date): RollbackSwap {
  return { from: f.backupName === undefined ? 'old' : 'backup', stamp: utcStamp(at) };
}

/** The id the data put back gets when it has none: NAME.old from before data ids; a staged backup has its new one already. */
function fallbackIdOf(f: RollbackFacts): string {
  return f.backupName === undefined ? oldDataIdOf(f) : restoredIdOf(f);
}

const scripts = {
  failed: (f: RollbackFacts) => failedDirPath(f.layout, utcStamp(f.now())),
  /** The one script of the swap (what --plan prints too): the launcher finds and checks the ids itself. */
  swap: (f: RollbackFacts, at: Date) => rollbackSwapScript(f.layout, f.runId, putBack(f, at), fallbackIdOf(f), { startedAt: at }),
};

export const swap: Step<RollbackCtx, RollbackPlanCtx> = {
  name: 'swap',
  title: 'swap: live -> NAME.failed-<stamp>, previous data -> live',
  undoText: 'by the journal: the restored dir back where it came from, the replaced live dir back as live; restart',

  async run(c, progress) {
    const { o, layout } = c;
    if (c.mode === 'live') return skipped(`${layout.live} already holds the data to serve`);
    const at = c.now();
    const rb = putBack(c, at);
    c.failed = failedDirPath(layout, rb.stamp);
    // Renames only, never cancelled half-way; once launched, its undo goes by the journal.
    const out = await rollbackSwapIn(o.host, layout, c.runId, rb, fallbackIdOf(c), {
      startedAt: at,
      onReconnect: (line) => progress(line),
      onLaunch: () => armUndo(c.stack, swap, c),
    });
    if (out.note) c.summary.warnings.push(`swap: ${out.note}`);
    if (out.status !== 'done') throw new Error(`the rollback's swap did not take place (${out.note ?? 'reversed on the remote'}): the live dir is unchanged`);
    c.hadLive = out.ids.live !== undefined;
    if (c.hadLive) c.summary.keptAs = c.failed;
    o.signal.throwIfAborted();
    return done(c.hadLive ? `current data kept as ${c.failed}` : 'no live dir was there');
  },

  async undo(c) {
    const { renamed } = await reverseSwap(c.o.host, c.layout, c.runId);
    // The replaced data is live again: not kept aside.
    if (renamed) delete c.summary.keptAs;
    if (c.restartAttempted) await c.o.host.restart(restartOptions(c));
  },

  plan(p) {
    return {
      commands: [p.remote(scripts.swap(p, p.now()), 'live_id= and next_id= (what NAME and the data put back held), then phase=done; otherwise stop: the next chroma-ferry command finishes or reverses it')],
      notes: [`journaled: .ferry/swap-journal-${p.layout.name}.json says where each dir is at every point`],
    };
  },
};

export const failedDirOf = scripts.failed;
