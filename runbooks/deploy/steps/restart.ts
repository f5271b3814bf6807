/**
 * 8. restart: --restart-cmd on the target, detached (output in VOLUME/.ferry/restart-RUNID.log)
 * and bounded by --restart-timeout; its start is recorded alongside. Undo: part of the swap's undo
 * (restart again on the old data).
 */
import { restartKeepingLog } from '../../../lib/hosts/restart.ts';
import { restartPlanStep } from '../../../lib/engine/plan.ts';
import { done, skipped } from '../../../lib/engine/runner.ts';
import type { Step } from '../../../lib/engine/step.ts';
import { recordOf, restartOptions, type DeployCtx, type DeployPlanCtx } from '../context.ts';

type RestartResult = { restartMs: number | null };

export const restart: Step<DeployCtx, DeployPlanCtx, RestartResult> = {
  name: 'restart',
  title: 'restart: the Chroma server',
  needs: ['swap'],
  undoText: 'part of the swap undo (restart again on the old data)',
  // The command starts while "swap done, restart running" is written (one state write less in the
  // downtime window). A crash before that write lands leaves "swap running": the next command
  // finds the swap complete on the volume (its journal) and restarts again.
  recordStartAlongside: true,

  async run(c) {
    c.restartAttempted = true;
    const t0 = performance.now();
    const restarted = await restartKeepingLog(c.o.host, { ...restartOptions(c), signal: c.o.signal }, c.summary);
    c.summary.restartMs = performance.now() - t0;
    if (!restarted) {
      c.summary.warnings.push('no --restart-cmd: the server was not restarted and may still serve the old files');
      return skipped('no --restart-cmd');
    }
    return done();
  },

  plan: (p) => restartPlanStep(p.o.host, restartOptions(p)),

  result: {
    save: (c) => ({ restartMs: c.summary.restartMs ?? null }),
    parse(raw) {
      const ms = recordOf(raw, 'restart').restartMs;
      return { restartMs: typeof ms === 'number' ? ms : null };
    },
    load() {
      // The restart time is this run's own.
    },
  },
};
