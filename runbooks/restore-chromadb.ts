/**
 * Runbook: restore a target's collections from a backup file (seed 004's rollback step): the
 * pre-migration backup `migrate` writes, or any `.jsonl` export.
 *
 *   connect    read the backup's header and collections; open the target
 *   remove     collections the migration created (listed as touched, absent from the backup)
 *   recreate   every backed-up collection dropped and re-created with its space, HNSW settings
 *              and metadata, then its records upserted in batches
 *   verify     counts equal the backup's; a sample compared field by field
 *
 * A rollback report (JSON) is written next to the backup, or to `--report`.
 */
import path from 'node:path';
import { writeJsonAtomic } from '../lib/engine/atomic-file.ts';
import { CompensationStack } from '../lib/engine/compensation.ts';
import { UserError } from '../lib/common/errors.ts';
import { endpointKind, openTarget, type Endpoint } from '../lib/migrate/endpoints.ts';
import { JsonlEndpoint } from '../lib/migrate/jsonl-endpoint.ts';
import type { CollectionInfo, MigrationRecord } from '../lib/migrate/types.ts';
import type { OutputMode } from '../lib/report/output.ts';
import { describeError, initialReports, runSteps, skipped, type StepDef, type StepReport } from '../lib/engine/runner.ts';
import { compareRecords } from './migrate/records.ts';

export interface RestoreOptions {
  backup: string;
  targetUrl: string;
  report?: string;
  /** Records per collection compared after the restore. */
  sample: number;
  output: OutputMode;
  signal: AbortSignal;
}

export interface RestoreReport {
  ok: boolean;
  backup: string;
  target: string;
  removed: string[];
  restored: { name: string; records: number; actual?: number }[];
  sampled: number;
  mismatches: string[];
  steps: StepReport[];
  reportFile: string;
  error?: string;
  finishedAt?: string;
}

interface Ctx {
  o: RestoreOptions;
  report: RestoreReport;
  backup: JsonlEndpoint;
  target?: Endpoint;
  collections: CollectionInfo[];
  touched: string[];
}

const STEPS: StepDef<Ctx>[] = [
  {
    name: 'connect',
    title: 'connect: read the backup, open the target',
    async run(c) {
      await c.backup.openForReading('--backup');
      const header = await c.backup.header();
      c.collections = await c.backup.listCollections();
      c.touched = header?.touched ?? c.collections.map((x) => x.name);
      c.target = (await openTarget(c.o.targetUrl, { resume: true, dryRun: false })).endpoint;
      return `${c.collections.length} collections in the backup (${c.collections.reduce((n, x) => n + x.count, 0)} records), ${c.touched.length} touched by the migration`;
    },
  },
  {
    name: 'remove',
    title: 'remove: collections the migration created',
    async run(c) {
      const inBackup = new Set(c.collections.map((x) => x.name));
      const created = c.touched.filter((n) => !inBackup.has(n));
      const existing = await c.target!.existing(created);
      for (const name of existing.keys()) {
        await c.target!.deleteCollection(name);
        c.report.removed.push(name);
      }
      return c.report.removed.length ? `removed ${c.report.removed.join(', ')}` : skipped('none to remove');
    },
  },
  {
    name: 'recreate',
    title: 'recreate: the backed-up collections, exactly',
    async run(c, progress) {
      const existing = await c.target!.existing(c.collections.map((x) => x.name));
      const batch = Math.max(1, Math.min(await c.target!.maxBatchSize(), 1000));
      let done = 0;
      const total = c.collections.reduce((n, x) => n + x.count, 0);
      for (const col of c.collections) {
        if (existing.has(col.name)) await c.target!.deleteCollection(col.name);
        await c.target!.ensureCollection(col);
        for await (const page of c.backup.read(col, batch, c.o.signal)) {
          await c.target!.upsert(col.name, page, c.o.signal);
          done += page.length;
          progress(`${done}/${total} records`);
        }
        c.report.restored.push({ name: col.name, records: col.count });
      }
      return `${c.collections.length} collections, ${done} records`;
    },
  },
  {
    name: 'verify',
    title: 'verify: counts and a sample equal the backup',
    async run(c) {
      for (const entry of c.report.restored) {
        entry.actual = await c.target!.count(entry.name);
        if (entry.actual !== entry.records) c.report.mismatches.push(`${entry.name}: ${entry.actual} records, the backup has ${entry.records}`);
        const col = c.collections.find((x) => x.name === entry.name)!;
        const step = Math.max(1, Math.floor(col.count / Math.max(1, c.o.sample)));
        let i = 0;
        const sample: MigrationRecord[] = [];
        for await (const page of c.backup.read(col, 500)) for (const r of page) if (i++ % step === 0 && sample.length < c.o.sample) sample.push(r);
        for (let k = 0; k < sample.length; k += 100) {
          const want = sample.slice(k, k + 100);
          const got = new Map((await c.target!.get(entry.name, want.map((r) => r.id))).map((r) => [r.id, r]));
          for (const w of want) {
            const p = compareRecords(w, got.get(w.id));
            if (p) c.report.mismatches.push(`${entry.name}/${w.id}: ${p}`);
          }
          c.report.sampled += want.length;
        }
      }
      for (const name of c.report.removed) {
        if ((await c.target!.existing([name])).size) c.report.mismatches.push(`${name}: still on the target`);
      }
      if (c.report.mismatches.length) throw new Error(`restore verify: ${c.report.mismatches.slice(0, 3).join('; ')}`);
      return `${c.report.restored.length} collections, counts equal; ${c.report.sampled} records compared`;
    },
  },
];

export const RESTORE_STEPS = STEPS.map((s) => s.name);

export async function runRestore(o: RestoreOptions): Promise<RestoreReport> {
  if (endpointKind('--target-url', o.targetUrl, { side: 'target', mayCreate: true }) === 'jsonl') {
    throw new UserError('--target-url: restore writes to a Chroma server or persist directory, not an export file');
  }
  const backupFile = path.resolve(o.backup);
  const reportFile = path.resolve(o.report ?? `${backupFile}.restore-report.json`);
  const report: RestoreReport = {
    ok: false, backup: backupFile, target: o.targetUrl, removed: [], restored: [], sampled: 0, mismatches: [],
    steps: initialReports(STEPS), reportFile,
  };
  const ctx: Ctx = { o, report, backup: new JsonlEndpoint(backupFile), collections: [], touched: [] };
  try {
    const r = await runSteps(STEPS, ctx, { output: o.output, signal: o.signal, stack: new CompensationStack(), reports: report.steps });
    report.ok = r.ok;
    if (!r.ok) {
      if (r.error instanceof UserError && report.steps[0]!.status === 'failed') throw r.error;
      report.error = describeError(r.error, o.signal);
    }
  } finally {
    await ctx.target?.close().catch(() => undefined);
  }
  report.finishedAt = new Date().toISOString();
  await writeJsonAtomic(reportFile, report);
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
