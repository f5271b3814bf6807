/**
 * `restore --plan`: the steps of a restore and the writes each would make on this target, from a
 * read-only look at the backup and the target (its collections now, its max batch size): each
 * step's own `plan()`, built by the same functions its `run()` carries out. Nothing is written;
 * a backup the target cannot store is refused here as the restore would refuse it.
 */
import path from 'node:path';
import type { ScopeChoice } from '../../lib/chroma/database-scope.ts';
import { openTarget } from '../../lib/migrate/endpoints.ts';
import { JsonlEndpoint } from '../../lib/migrate/jsonl-endpoint.ts';
import { createdByMigration, restoreBatchSize, type RestorePlanCtx } from './context.ts';
import { RESTORE_STEP_OBJECTS, refuseExportTarget } from './index.ts';
import { readBackup, refuseUnstorable } from './steps/connect.ts';

export interface RestorePlanStep {
  name: string;
  title: string;
  /** What the step would do, one line per write (in order) or check. */
  does: string[];
  undo: string;
}

export interface RestorePlan {
  runbook: 'restore';
  backup: string;
  target: string;
  steps: RestorePlanStep[];
}

/** The plan of a restore whose facts are known. */
export function restorePlanOf(p: RestorePlanCtx): RestorePlan {
  return {
    runbook: 'restore', backup: p.backup, target: p.target,
    steps: RESTORE_STEP_OBJECTS.map((s) => ({ name: s.name, title: s.title, does: s.plan(p).notes, undo: s.undoText })),
  };
}

export async function planRestore(o: { backup: string; targetUrl: string; targetScope?: ScopeChoice; sample: number; signal?: AbortSignal }): Promise<RestorePlan> {
  refuseExportTarget(o.targetUrl);
  const backup = new JsonlEndpoint(path.resolve(o.backup));
  const facts = await readBackup(backup);
  const { endpoint: target } = await openTarget(o.targetUrl, { resume: true, dryRun: true, scope: o.targetScope });
  try {
    await refuseUnstorable(backup, facts, target, o.signal);
    const names = [...new Set([...createdByMigration(facts), ...facts.collections.map((x) => x.name)])];
    return restorePlanOf({
      ...facts, backup: backup.file, target: target.label, onTarget: new Set((await target.existing(names)).keys()),
      batchSize: restoreBatchSize(await target.maxBatchSize()), sample: o.sample,
    });
  } finally {
    await target.close();
  }
}

export function formatRestorePlan(p: RestorePlan): string {
  const lines = [`restore plan: ${p.backup} -> ${p.target}; nothing has been done`];
  p.steps.forEach((s, i) => {
    lines.push(`  ${i + 1}. ${s.name}: ${s.does[0] ?? ''}`, ...s.does.slice(1).map((d) => `     ${d}`), `     undo: ${s.undo}`);
  });
  return lines.join('\n');
}
