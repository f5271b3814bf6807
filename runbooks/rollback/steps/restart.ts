/** 4. restart: --restart-cmd on the target. Undo: part of the swap's undo. */
import { restartPlanStep } from '../../../lib/plan.ts';
import { done, skipped } from '../../../lib/runbook-runner.ts';
import type { Step } from '../../../lib/runbook-step.ts';
import type { RollbackCtx, RollbackPlanCtx } from '../context.ts';

export const restart: Step<RollbackCtx, RollbackPlanCtx> = {
  name: 'restart',
  title: 'restart: the Chroma server',
  undoText: 'part of the swap undo',

  async run(c) {
    c.restartAttempted = true;
    if (!(await c.o.host.restart({ signal: c.o.signal }))) {
      c.summary.warnings.push('no --restart-cmd: the server was not restarted');
      return skipped('no --restart-cmd');
    }
    return done();
  },

  plan: (p) => restartPlanStep(p.o.host),
};
