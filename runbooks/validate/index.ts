/**
 * Runbook: the validation gate between a migration and the cutover (seed 004). Three steps, one
 * Step object each in steps/ (all read-only: no undo); `--plan` (plan.ts) is their `plan()`.
 *
 *   (before)  the migration's record (backup header, checkpoint): a contradicting --transform is refused
 *   connect   open the old and the new database read-only; load the migration's transform
 *   expected  the old database through the transform (and its validator) into a temp staging dir
 *   compare   per target collection: the expected records against the new database's, and the exact
 *             top-k of the same query vectors over both (all eight checks)
 *
 * Then, whatever the steps did (a gate that could not finish is FAILED):
 *   rollback  with --auto-rollback and a FAILED gate: `restore` from the backup (rollback.ts)
 *   report    report.md + report.json: overall status, per-check figures, elapsed time, and the
 *             decision: rollback_triggered whenever FAILED (a separate rollback job acts on it) (report.ts)
 *
 * One paged read of each database; the new one is held one collection at a time. The semantic check
 * searches exactly over the records read (deterministic: two HNSW graphs built in another order
 * rank near-ties differently, which an ANN comparison would report as divergence).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CompensationStack } from '../../lib/engine/compensation.ts';
import { UserError } from '../../lib/common/errors.ts';
import { CHECK_NAMES, GateChecker } from '../../lib/gate/checks.ts';
import { resolveGateMigration, type GateMigration } from '../../lib/gate/recorded-migration.ts';
import { endpointKind } from '../../lib/migrate/endpoints.ts';
import { JsonlEndpoint } from '../../lib/migrate/jsonl-endpoint.ts';
import { describeError, initialReports, runSteps } from '../../lib/engine/runner.ts';
import { reportFiles, type ValidateCtx, type ValidateOptions, type ValidateStepObject } from './context.ts';
import { recordChecks, rollbackReason, writeGateReports, type GateReport } from './report.ts';
import { rollBack } from './rollback.ts';
import { compare } from './steps/compare.ts';
import { connect } from './steps/connect.ts';
import { expected } from './steps/expected.ts';

export type { ValidateOptions } from './context.ts';
export { formatGateMarkdown, formatGateSummary, gateExitCode, restoreCommand, type GateReport, type RollbackResult } from './report.ts';
export { CHECK_NAMES };

/** The gate, in order. */
export const VALIDATE_STEP_OBJECTS: readonly ValidateStepObject[] = [connect, expected, compare];

export const VALIDATE_STEPS = VALIDATE_STEP_OBJECTS.map((s) => s.name);

/**
 * Everything checked before the gate reads anything: the migration's record against --transform
 * and --prefix (a contradiction is refused: exit 2), and the backup an --auto-rollback restores.
 */
export async function prepareValidate(o: ValidateOptions): Promise<GateMigration> {
  const m = await resolveGateMigration({ oldUrl: o.oldUrl, newUrl: o.newUrl, transform: o.transform, prefix: o.prefix, backup: o.backup, checkpoint: o.checkpoint });
  if (o.autoRollback) {
    if (!m.backup) throw new UserError('--auto-rollback needs --backup FILE (the backup migrate wrote in its checkpoint dir, or any .jsonl export), or the migration\'s --checkpoint-dir');
    if (endpointKind('--new-db-url', o.newUrl) === 'jsonl') throw new UserError('--auto-rollback: --new-db-url is an export file; restore writes to a Chroma server or persist directory');
    if (!o.backup) {
      await fs.access(m.backup).catch(() => { throw new UserError(`the backup the migration's checkpoint names (${m.backup}) is gone; pass --backup FILE`); });
      await new JsonlEndpoint(m.backup).openForReading('the migration\'s backup');
    }
  }
  return m;
}

/** A gate run's context before its first step (also for tests that run single steps); `staging` is the run's temp dir. */
export function newValidateCtx(o: ValidateOptions, m: GateMigration, staging: string): ValidateCtx {
  const report: GateReport = {
    overall_status: 'FAILED', rollback_triggered: false, rollback_reason: null, rollback_executed: false, rollback_result: null, rollback_backup: m.backup,
    old_db: o.oldUrl, new_db: o.newUrl, ...(o.newScope ? { new_db_scope: o.newScope } : {}), transform: m.transform.spec, transform_source: m.transform.source, transform_recorded_in: m.transform.recordedIn,
    prefix: m.transform.prefix ?? null, generated_at: '', elapsed_seconds: 0, data_loss_percentage: 0, semantic_divergence_percentage: 0, checks: [], differences: null,
    steps: initialReports([...VALIDATE_STEP_OBJECTS]), notes: [...m.notes], report_files: reportFiles(o.output),
  };
  return { o, m, collections: [], staging, targets: new Map(), queries: [], gate: new GateChecker(o.sample), report };
}

export async function runValidate(o: ValidateOptions, prepared?: GateMigration): Promise<GateReport> {
  const m = prepared ?? (await prepareValidate(o));
  const t0 = performance.now();
  await fs.mkdir(path.dirname(reportFiles(o.output).markdown), { recursive: true });
  const staging = await fs.mkdtemp(path.join(os.tmpdir(), 'chroma-ferry-gate-'));
  const ctx = newValidateCtx(o, m, staging);
  const { report } = ctx;
  try {
    const r = await runSteps([...VALIDATE_STEP_OBJECTS], ctx, { output: o.outputMode, signal: o.signal, stack: new CompensationStack(), reports: report.steps });
    if (!r.ok) {
      if (r.error instanceof UserError) throw r.error;
      report.error = describeError(r.error, o.signal);
    } else {
      recordChecks(report, ctx.gate.results(), ctx.gate.differences.report());
    }
  } finally {
    await ctx.old?.close().catch(() => undefined);
    await ctx.neu?.close().catch(() => undefined);
    await fs.rm(staging, { recursive: true, force: true });
  }
  if (report.overall_status === 'FAILED') {
    report.rollback_triggered = true;
    report.rollback_reason = rollbackReason(report);
    if (o.autoRollback && o.signal.aborted) report.notes.push('interrupted: the rollback was not run');
    else if (o.autoRollback) report.rollback_result = await rollBack(m.backup!, o);
    report.rollback_executed = report.rollback_result !== null;
  }
  report.generated_at = new Date().toISOString();
  report.elapsed_seconds = Math.round((performance.now() - t0) / 10) / 100;
  await writeGateReports(report);
  return report;
}
