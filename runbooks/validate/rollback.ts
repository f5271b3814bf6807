/**
 * The rollback a FAILED gate carries out with --auto-rollback: `restore` of the migration's backup
 * onto the new database (runbooks/restore/), its outcome kept in the gate's report. It runs after
 * the steps, whatever they did (a gate that could not finish is FAILED too), so it is not one of them.
 */
import { runRestore } from '../restore/index.ts';
import { retireCutoverAfterRestore, undoAliasCutover } from '../migrate/undo.ts';
import { planRestore, type RestorePlan } from '../restore/plan.ts';
import type { ValidateOptions } from './context.ts';
import type { RollbackResult } from './report.ts';

/** Records per collection the rollback's restore compares after writing. */
export const ROLLBACK_SAMPLE = 200;

export async function rollBack(backup: string, o: ValidateOptions): Promise<RollbackResult> {
  let method: RollbackResult['method'] = 'undo_cutover';
  try {
    const undone = await undoAliasCutover(backup, o.newUrl);
    if (undone) return { ok: true, method: 'undo_cutover', backup, aliases: undone.aliases, removed: undone.dropped, restored: [], mismatches: [], report_file: null };
    method = 'restore';
    const r = await runRestore({ backup, targetUrl: o.newUrl, targetScope: o.newScope, sample: ROLLBACK_SAMPLE, output: o.outputMode, signal: o.signal });
    if (r.ok) await retireCutoverAfterRestore(backup); // a staged migration's previous versions: the records just restored
    return { ok: r.ok, method: 'restore', backup: r.backup, removed: r.removed, restored: r.restored, mismatches: r.mismatches, report_file: r.reportFile, error: r.error };
  } catch (e) {
    return { ok: false, method, backup, removed: [], restored: [], mismatches: [], report_file: null, error: e instanceof Error ? e.message : String(e) };
  }
}

/** What the rollback would do now (`validate --plan`): the restore's own plan. */
export function planRollBack(backup: string, o: Pick<ValidateOptions, 'newUrl' | 'newScope' | 'signal'>): Promise<RestorePlan> {
  return planRestore({ backup, targetUrl: o.newUrl, targetScope: o.newScope, sample: ROLLBACK_SAMPLE, signal: o.signal });
}
