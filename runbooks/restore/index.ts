/**
 * Runbook: restore a target's collections from a backup file (seed 004's rollback step): the
 * pre-migration backup `migrate` writes, or any `.jsonl` export. Four steps, one Step object each
 * in steps/; `--plan` (plan.ts) is their `plan()`.
 *
 *   connect    read the backup's header and collections; open the target;     undo: none (nothing written)
 *              refuse a record the target cannot store, before any write
 *   remove     collections the migration created (listed as touched,          undo: none (the migration's own;
 *              absent from the backup)                                               run restore again to finish)
 *   recreate   every backed-up collection dropped and re-created with its     undo: none (the same)
 *              space, HNSW settings and metadata, then its records upserted in batches
 *   verify     counts equal the backup's; a sample compared field by field    undo: none (reads only)
 *
 * A restore is the undo of a migration: it has none of its own. Every collection is rebuilt from
 * the backup whole, so an interrupted restore is finished by running it again.
 *
 * A rollback report (JSON) is written next to the backup, or to `--report`.
 */
import path from 'node:path';
import { writeJsonAtomic } from '../../lib/engine/atomic-file.ts';
import { CompensationStack } from '../../lib/engine/compensation.ts';
import { UserError } from '../../lib/common/errors.ts';
import { endpointKind } from '../../lib/migrate/endpoints.ts';
import { JsonlEndpoint } from '../../lib/migrate/jsonl-endpoint.ts';
import { describeError, initialReports, runSteps } from '../../lib/engine/runner.ts';
import type { RestoreCtx, RestoreOptions, RestoreReport, RestoreStepObject } from './context.ts';
import { connect } from './steps/connect.ts';
import { recreate } from './steps/recreate.ts';
import { remove } from './steps/remove.ts';
import { verify } from './steps/verify.ts';

export type { RestoreOptions, RestoreReport } from './context.ts';

/** The restore, in order. */
export const RESTORE_STEP_OBJECTS: readonly RestoreStepObject[] = [connect, remove, recreate, verify];

export const RESTORE_STEPS = RESTORE_STEP_OBJECTS.map((s) => s.name);

/** A restore's context before its first step (also for tests that run single steps). */
export function newRestoreCtx(o: RestoreOptions): RestoreCtx {
  const backupFile = path.resolve(o.backup);
  const report: RestoreReport = {
    ok: false, backup: backupFile, target: o.targetUrl, removed: [], restored: [], sampled: 0, mismatches: [],
    steps: initialReports([...RESTORE_STEP_OBJECTS]), reportFile: path.resolve(o.report ?? `${backupFile}.restore-report.json`),
  };
  return { o, report, backup: new JsonlEndpoint(backupFile), collections: [], touched: [] };
}

/** Refused before anything is opened: an export file is no restore target. */
export function refuseExportTarget(targetUrl: string): void {
  if (endpointKind('--target-url', targetUrl, { side: 'target', mayCreate: true }) === 'jsonl') {
    throw new UserError('--target-url: restore writes to a Chroma server or persist directory, not an export file');
  }
}

export async function runRestore(o: RestoreOptions): Promise<RestoreReport> {
  refuseExportTarget(o.targetUrl);
  const ctx = newRestoreCtx(o);
  const { report } = ctx;
  try {
    const r = await runSteps([...RESTORE_STEP_OBJECTS], ctx, { output: o.output, signal: o.signal, stack: new CompensationStack(), reports: report.steps });
    report.ok = r.ok;
    if (!r.ok) {
      // Refused in connect: nothing written, so it is a one-line user error (exit 2).
      if (r.error instanceof UserError && report.steps[0]!.status === 'failed') throw r.error;
      report.error = describeError(r.error, o.signal);
    }
  } finally {
    await ctx.target?.close().catch(() => undefined);
  }
  report.finishedAt = new Date().toISOString();
  await writeJsonAtomic(report.reportFile, report);
  return report;
}

export function formatRestoreReport(r: RestoreReport): string {
  const lines = [`${r.ok ? 'RESTORED' : 'RESTORE FAILED'}  ${r.backup} -> ${r.target}`];
  if (r.error) lines.push(`  error: ${r.error}`);
  for (const n of r.removed) lines.push(`  removed ${n} (created by the migration)`);
  for (const c of r.restored) lines.push(`  restored ${c.name}: ${c.records} records${c.actual !== undefined ? `, ${c.actual} on the target` : ''}`);
  lines.push(`  verify: ${r.sampled} records compared, ${r.mismatches.length} problems`, `  report: ${r.reportFile}`);
  return lines.join('\n');
}
