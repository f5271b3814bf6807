/**
 * `rollback --plan`: the rollback runbook as the commands a person would run by hand: each step's
 * own `plan()`, built with the same script calls its `run()` makes. Nothing is executed; with
 * `--backup` the plan needs the backup's name (`latest` would need a look at the remote).
 */
import crypto from 'node:crypto';
import { UserError } from '../../lib/common/errors.ts';
import { cliArgv, planCommand, type RunbookPlan } from '../../lib/engine/plan.ts';
import { remoteLayout } from '../../lib/remote/layout.ts';
import { planStep } from '../../lib/engine/step.ts';
import { lockOwnerRecord } from '../../lib/volume/lock.ts';
import { rollbackSource, stagingDir, type RollbackFacts, type RollbackPlanCtx, type RollbackPlanOptions } from './context.ts';
import { ROLLBACK_STEPS } from './index.ts';
import { failedDirOf } from './steps/swap.ts';

export type { RollbackPlanOptions } from './context.ts';

export function planRollback(o: RollbackPlanOptions): RunbookPlan & { targetSource?: string } {
  if (o.backup === 'latest') {
    throw new UserError('--plan needs the backup\'s name, not latest: chroma-ferry backups --target ... lists them');
  }
  const runId = crypto.randomBytes(6).toString('hex');
  const layout = remoteLayout(o.host.resolveVolume(o.volume), o.dbDir);
  const now = new Date();
  const p = rollbackPlanCtx({
    o, runId, layout, staging: stagingDir(layout, runId), now: () => now, backupName: o.backup,
    lockOwner: lockOwnerRecord(runId, 'rollback (by hand, from --plan)', { pid: null, startedAt: now }),
  }, o);
  return {
    runbook: 'rollback', runId, generatedAt: now.toISOString(), target: o.host.label, liveDir: layout.live,
    ...(o.targetSource ? { targetSource: o.targetSource } : {}),
    header: [
      `${p.source} -> ${o.host.label} ${layout.live} (the current live dir kept as ${failedDirOf(p)})`,
      ...(o.targetSource ? [`target ${o.host.label} from ${o.targetSource}`] : []),
    ],
    steps: ROLLBACK_STEPS.map((s) => planStep(s, p)),
  };
}

/** The plan's view of a rollback whose facts are known (a plan's, or a run's once its preflight ran). */
export function rollbackPlanCtx(f: RollbackFacts, o: RollbackPlanOptions): RollbackPlanCtx {
  return {
    ...f, o, source: f.source ?? rollbackSource(f), cli: cliArgv(),
    remote: (script, expect) => planCommand(script.title, o.host.renderRun(script), o.host.label, expect),
  };
}
