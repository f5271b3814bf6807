/**
 * Runbook: API-level migration (seeds 001, 002). Source -> transform -> validate -> sink. Seven
 * phases, one Step object each in steps/ (title, run, what --plan says it does). Into a target
 * that stages (Chroma, Qdrant), export, transform, validation and import run overlapped
 * (stream.ts): connect, then the checks possible before any record (transform, backup), then the
 * records stream from the source into the staging collections (import), the --min-valid gate after
 * the last record, verify, cutover. `--dry-run` and a .jsonl target run stage by stage:
 *
 *   connect    open the source read-only and the target; batch size; checkpoint dir writable
 *   export     every source collection paged into staging/export/*.jsonl (a concurrent writer is caught)
 *   transform  transform + validate each record into staging/staged/<target>.jsonl; gate on --min-valid
 *   backup     the target collections about to be written, exported to staging/backup.jsonl
 *   import     batched upserts into staging collections NAME__ferry_<run> (a .jsonl target: in place), checkpoint after each batch
 *   verify     the gate on the staging collections: counts, a sample compared field by field; failed: staging dropped
 *   cutover    journaled renames (Chroma) or an alias switch (Qdrant) put the staging collections live (steps/cutover.ts)
 *
 * `--dry-run` runs connect, export and transform and writes nothing to the target. `--resume`
 * continues the checkpoint's run: finished phases are not redone, imported batches not re-sent.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { CompensationStack } from '../../lib/engine/compensation.ts';
import { UserError } from '../../lib/common/errors.ts';
import { refuseUnfinishedCutover } from '../../lib/migrate/cutover.ts';
import { CheckpointStore, MIGRATE_PHASES, recordedIdentity, refuseChangedRun, type MigrateCheckpoint } from '../../lib/migrate/checkpoint.ts';
import { JsonlLog } from '../../lib/migrate/log.ts';
import { recordTransform } from '../../lib/migrate/transform-record.ts';
import { describeError, initialReports, runSteps } from '../../lib/engine/runner.ts';
import { pct, type MigrateCtx, type MigrateOptions, type MigrateStepObject, type MigrateSummary } from './context.ts';
import { backup } from './steps/backup.ts';
import { connect } from './steps/connect.ts';
import { cutoverStep } from './steps/cutover.ts';
import { exportStep } from './steps/export.ts';
import { importStep } from './steps/import.ts';
import { transform } from './steps/transform.ts';
import { verify } from './steps/verify.ts';

export type { MigrateOptions, MigrateSummary } from './context.ts';
export { ValidationGateError } from './steps/transform.ts';
export { compareRecords } from './records.ts';

export const MIGRATE_STEPS = MIGRATE_PHASES;

/** The migration, in order. */
export const MIGRATE_STEP_OBJECTS: readonly MigrateStepObject[] = [connect, exportStep, transform, backup, importStep, verify, cutoverStep];

if (MIGRATE_STEP_OBJECTS.map((s) => s.name).join() !== MIGRATE_PHASES.join()) throw new Error('the migrate step objects are not MIGRATE_PHASES, in order');

export async function runMigrate(o: MigrateOptions): Promise<MigrateSummary> {
  const store = new CheckpointStore(path.resolve(o.checkpointDir));
  await store.ensureWritable();
  let cp: MigrateCheckpoint | null = null;
  if (o.resume) {
    cp = await store.load();
    if (!cp) throw new UserError(`--resume: no checkpoint in ${store.dir}; run without --resume (or pass the --checkpoint-dir of the run to continue)`);
    refuseChangedRun(cp, o, store.dir);
  } else if (!o.dryRun) {
    await refuseUnfinishedCutover(store.dir, o.targetUrl);
  }
  const runId = cp?.runId ?? `${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '')}-${crypto.randomBytes(3).toString('hex')}`;
  cp ??= {
    version: 1, runId, source: o.sourceUrl, target: o.targetUrl, transform: o.transform, batchSize: 0,
    stagingDir: path.join(store.dir, runId), phases: {}, exported: {}, targets: {}, updatedAt: '', ...recordedIdentity(o),
  };
  cp.transformRecord ??= await recordTransform(o.transform, { prefix: o.prefix, renames: o.renames });
  await fs.mkdir(path.resolve(o.logDir), { recursive: true }).catch((e: NodeJS.ErrnoException) => {
    throw new UserError(`--log-dir ${o.logDir} cannot be created (${e.code}); pass a writable directory`);
  });
  const log = new JsonlLog(path.join(path.resolve(o.logDir), `migrate-${runId}.jsonl`), o.verbose);
  const summary: MigrateSummary = {
    ok: false, runId, source: o.sourceUrl, target: o.targetUrl, transform: o.transform, dryRun: o.dryRun, resumed: o.resume,
    batchSize: 0, steps: initialReports([...MIGRATE_STEP_OBJECTS]), collections: [], targets: [],
    import: { batchesSent: 0, batchesSkipped: 0, recordsSent: 0, retries: 0 },
    checkpointFile: store.file, logFile: log.file, warnings: [], rollback: [],
  };
  const ctx: MigrateCtx = { o, store, cp, log, summary, collections: [], maxBatch: 0, existedBefore: new Map() };
  const stack = new CompensationStack();
  await log.write({ event: 'start', runId, source: o.sourceUrl, target: o.targetUrl, transform: o.transform, dryRun: o.dryRun, resume: o.resume });
  try {
    const r = await runSteps([...MIGRATE_STEP_OBJECTS], ctx, {
      output: o.output, signal: o.signal, stack, reports: summary.steps,
      onStatus: async (step, status) => { await log.write({ event: 'step', step, status }); },
    });
    summary.ok = r.ok;
    summary.rollback = r.rollback;
    if (!r.ok) {
      summary.error = describeError(r.error, o.signal);
      await log.write({ event: 'failed', error: summary.error });
      // Refused before anything was written, or mid-stream with this run's staging dropped (the target as before): a one-line user error (exit 2).
      if (r.error instanceof UserError && (!cp.phases.backup || ctx.liveUntouched)) throw r.error;
    } else {
      await log.write({ event: 'done', summary: { targets: summary.targets, import: summary.import } });
    }
  } finally {
    await ctx.source?.close().catch(() => undefined);
    await ctx.target?.close().catch(() => undefined);
    await log.close();
  }
  return summary;
}

export function formatMigrateSummary(s: MigrateSummary): string {
  const lines = [`${s.ok ? (s.dryRun ? 'DRY RUN OK' : 'MIGRATED') : 'MIGRATION FAILED'}  ${s.source} -> ${s.target} (transform ${s.transform})`];
  if (s.createdDir) lines.push(`  created new persist dir ${s.createdDir}`);
  if (s.createdDatabase) lines.push(`  created ${s.createdDatabase} on the target (--create-database)`);
  if (s.error) lines.push(`  error: ${s.error}`);
  lines.push('  steps:');
  for (const st of s.steps) {
    if (st.status === 'not run') continue;
    lines.push(`    ${st.name.padEnd(10)} ${st.status.padEnd(7)} ${`${Math.round(st.ms)} ms`.padStart(9)}${st.note ? `  ${st.note}` : ''}`);
  }
  for (const c of s.collections) lines.push(`  source ${c.source}: ${c.exported} exported`);
  const empty = s.targets.filter((t) => t.expected === 0).length;
  if (s.targets.length) lines.push(`  collections: ${s.targets.length}${empty ? ` (${empty} empty)` : ''}`);
  for (const t of s.targets) lines.push(`  target ${t.name} (from ${t.from}): ${t.expected} expected${t.actual !== undefined ? `, ${t.actual} on the target` : ''}${t.existedBefore ? ' (existed before)' : ''}`);
  if (s.validation) {
    lines.push(`  validation: ${s.validation.valid}/${s.validation.total} valid (${pct(s.validation.validShare)})`);
    for (const i of s.validation.issues.slice(0, 8)) lines.push(`    ${i.issue}: ${i.records}${i.ids?.length ? ` (e.g. ${i.ids.join(', ')})` : ''}`);
  }
  if (!s.dryRun) {
    lines.push(`  import: ${s.import.recordsSent} records in ${s.import.batchesSent} batches (batch size ${s.batchSize}), ${s.import.batchesSkipped} batches already done, ${s.import.retries} retries` +
      (s.import.recordsPerSecond ? `, ${s.import.recordsPerSecond} records/s` : ''));
  }
  if (s.verify) lines.push(`  verify: ${s.verify.sampled} records compared, ${s.verify.mismatches.length} problems`);
  if (s.cutover?.previous.length) lines.push(`  cut over; previous versions kept: ${s.cutover.previous.join(', ')} (undo: chroma-ferry migrate --undo --checkpoint-dir ${path.dirname(s.checkpointFile)})`);
  else if (s.cutover && s.ok) lines.push(`  cut over (undo: chroma-ferry migrate --undo --checkpoint-dir ${path.dirname(s.checkpointFile)})`);
  if (s.cutover?.dropped.length) lines.push(`  dropped: ${s.cutover.dropped.join(', ')}`);
  if (s.backupFile) lines.push(`  backup of the target collections: ${s.backupFile}`);
  lines.push(`  checkpoint: ${s.checkpointFile}`, `  log: ${s.logFile}`);
  for (const w of s.warnings) lines.push(`  warning: ${w}`);
  return lines.join('\n');
}
