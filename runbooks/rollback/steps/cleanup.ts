/**
 * 6. cleanup: the staging dir, the deploy's state closed when it stopped half-way, the lock. (The
 * last deploy's kept manifest went in the verify step.) Undo: none.
 */
import { unlockScript } from '../../../lib/remote/scripts.ts';
import { done } from '../../../lib/engine/runner.ts';
import { redact } from '../../../lib/report/secrets.ts';
import type { Step } from '../../../lib/engine/step.ts';
import type { RollbackCtx, RollbackFacts, RollbackPlanCtx } from '../context.ts';
import { removeStagingScript } from './stage.ts';

const scripts = {
  removeStaging: removeStagingScript,
  unlock: (f: RollbackFacts) => unlockScript(f.layout, f.runId),
};

export const cleanup: Step<RollbackCtx, RollbackPlanCtx> = {
  name: 'cleanup',
  title: 'cleanup: staging dir and lock',
  undoText: 'none',

  async run(c) {
    const { o } = c;
    await o.host.run(scripts.removeStaging(c));
    await closeRecordedDeploy(c);
    await o.host.run(scripts.unlock(c));
    c.stack.clear();
    return done();
  },

  plan(p) {
    return {
      commands: [p.remote(scripts.removeStaging(p)), p.remote(scripts.unlock(p))],
      notes: [],
    };
  },
};

/** A deploy that stopped half-way is over once rolled back: its state says so (a new deploy may start). */
async function closeRecordedDeploy(c: RollbackCtx): Promise<void> {
  const deploy = await c.deployState.load(c.o.signal).catch(() => null);
  if (!deploy || deploy.finished) return;
  deploy.finished = true;
  deploy.outcome = `rolled back by rollback run ${c.runId}`;
  // The rollback is done and checked: a state that cannot be written (a full volume) is a warning,
  // never a reason to undo it (the volume's ids, not this state, say what is live).
  await c.deployState.save(deploy, c.o.signal).catch((e: unknown) => {
    c.summary.warnings.push(`the stopped deploy's runbook state was not closed: ${redact(e instanceof Error ? e.message : String(e))}`);
  });
}
