/** 4. restart: --restart-cmd on the target, detached and bounded by --restart-timeout. Undo: part of the swap's undo. */
import { restartKeepingLog } from '../../../lib/hosts/restart.ts';
import { restartPlanStep } from '../../../lib/engine/plan.ts';
import { done, skipped } from '../../../lib/engine/runner.ts';
import type { Step } from '../../../lib/engine/step.ts';
import { restartOptions, type RollbackCtx, type RollbackPlanCtx } from '../context.ts';

export const restart: Step<RollbackCtx, RollbackPlanCtx> = {
  name: 'restart',
  title: 'restart: the Chroma server',
  undoText: 'part of the swap undo',

  async run(c) {
    c.restartAttempted = true;
    const restarted = await restartKeepingLog(c.o.host, { ...restartOptions(c), signal: c.o.signal }, c.summary);
    if (!restarted) {
      c.summary.warnings.push('no --restart-cmd: the server was not restarted');
      return skipped('no --restart-cmd');
    }
    return done();
  },

  plan: (p) => restartPlanStep(p.o.host, restartOptions(p)),
};
