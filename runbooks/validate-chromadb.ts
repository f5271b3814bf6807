/**
 * Runbook: the validation gate between a migration and the cutover (seed 004).
 *
 *   connect   open the old and the new database read-only; load the migration's transform
 *   expected  the old database through the transform (and its validator) into a temp staging dir
 *   compare   per target collection: the expected records against the new database's, and the exact
 *             top-k of the same query vectors over both (all eight checks)
 *   report    report.md + report.json: overall status, per-check figures, elapsed time
 *   rollback  with --auto-rollback and a FAILED gate: `restore` from --backup
 *
 * One paged read of each database; the new one is held one collection at a time. The semantic check
 * searches exactly over the records read (deterministic: two HNSW graphs built in another order
 * rank near-ties differently, which an ANN comparison would report as divergence).
 */
import crypto from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { writeJsonAtomic } from '../lib/atomic-file.ts';
import { CompensationStack } from '../lib/compensation.ts';
import { UserError } from '../lib/errors.ts';
import { CHECK_NAMES, GateChecker, ROLLBACK_REASONS, type CheckResult, type CheckStatus } from '../lib/gate/checks.ts';
import { openSource, type Endpoint } from '../lib/migrate/endpoints.ts';
import { readJsonl } from '../lib/migrate/jsonl-lines.ts';
import { loadTransform, type Transform } from '../lib/migrate/transform.ts';
import type { CollectionInfo, DistanceSpace, MigrationRecord } from '../lib/migrate/types.ts';
import { RecordValidator } from '../lib/migrate/validate.ts';
import type { OutputMode } from '../lib/output.ts';
import { describeError, initialReports, runSteps, type StepDef, type StepReport } from '../lib/runbook-runner.ts';
import { runRestore, type RestoreReport } from './restore-chromadb.ts';

export interface ValidateOptions {
  oldUrl: string;
  newUrl: string;
  transform: string;
  prefix?: string;
  testQueries?: string;
  /** Compare embeddings of N records per collection (default: every record). */
  sample?: number;
  /** Query vectors sampled per old collection when no --test-queries. */
  queries: number;
  topK: number;
  output: string;
  autoRollback: boolean;
  backup?: string;
  outputMode: OutputMode;
  signal: AbortSignal;
}

export interface GateReport {
  overall_status: CheckStatus;
  rollback_triggered: boolean;
  rollback_reason: string | null;
  old_db: string;
  new_db: string;
  transform: string;
  generated_at: string;
  elapsed_seconds: number;
  data_loss_percentage: number;
  semantic_divergence_percentage: number;
  checks: CheckResult[];
  rollback?: Pick<RestoreReport, 'ok' | 'removed' | 'restored' | 'mismatches' | 'reportFile' | 'error'>;
  steps: StepReport[];
  error?: string;
  report_files: { markdown: string; json: string };
}

interface QueryCase {
  label: string;
  source: string;
  target: string;
  embedding: number[];
  k: number;
  where?: Record<string, unknown>;
}

interface Ctx {
  o: ValidateOptions;
  old?: Endpoint;
  neu?: Endpoint;
  transform?: Transform;
  collections: CollectionInfo[];
  staging: string;
  targets: Map<string, { count: number; ids: Set<string>; from: Map<string, number>; space: DistanceSpace }>;
  queries: QueryCase[];
  gate: GateChecker;
  report: GateReport;
}

const STEPS: StepDef<Ctx>[] = [
  {
    name: 'connect',
    title: 'connect: old and new database (read-only), transform',
    async run(c) {
      c.old = await openSource(c.o.oldUrl, { signal: c.o.signal }).catch((e) => { throw relabel(e, '--source-url', '--old-db-url'); });
      c.neu = await openSource(c.o.newUrl, { signal: c.o.signal, side: 'target' }).catch((e) => { throw relabel(e, '--source-url', '--new-db-url'); });
      c.transform = await loadTransform(c.o.transform, { prefix: c.o.prefix });
      c.collections = await c.old.listCollections();
      return `${c.collections.length} old collections (${c.collections.reduce((n, x) => n + x.count, 0)} records)`;
    },
  },
  {
    name: 'expected',
    title: 'expected: the old database through the transform',
    async run(c, progress) {
      const validator = new RecordValidator();
      const writers = new Map<string, WriteStream>();
      let n = 0;
      for (const col of c.collections) {
        const every = Math.max(1, Math.floor(col.count / Math.max(1, c.o.queries)));
        let i = 0;
        for await (const page of c.old!.read(col, 500, c.o.signal)) {
          for (const r of page) {
            for (const t of await c.transform!.apply(r, col)) {
              if (validator.check(t.collection, t.record, c.transform!.schemaOf(t.collection)).length) continue;
              let w = writers.get(t.collection);
              if (!w) {
                w = createWriteStream(stagedFile(c, t.collection));
                writers.set(t.collection, w);
                c.targets.set(t.collection, { count: 0, ids: new Set(), from: new Map(), space: c.transform!.targetCollection(t.collection, col).space });
              }
              const entry = c.targets.get(t.collection)!;
              if (!entry.ids.has(t.record.id)) entry.count++;
              entry.ids.add(t.record.id);
              entry.from.set(col.name, (entry.from.get(col.name) ?? 0) + 1);
              await new Promise<void>((res, rej) => w!.write(`${JSON.stringify(t.record)}\n`, (e) => (e ? rej(e) : res())));
              if (!c.o.testQueries && i % every === 0 && c.queries.filter((q) => q.source === col.name).length < c.o.queries && t.record.embedding) {
                c.queries.push({ label: `${col.name}/${t.record.id}`, source: col.name, target: t.collection, embedding: t.record.embedding, k: c.o.topK });
              }
            }
            i++;
            n++;
          }
          progress(`${n} records`);
        }
      }
      await Promise.all([...writers.values()].map((w) => new Promise<void>((res) => w.end(res))));
      if (c.o.testQueries) c.queries = await loadTestQueries(c, c.o.testQueries);
      return `${n} old records -> ${[...c.targets.values()].reduce((a, t) => a + t.count, 0)} expected in ${c.targets.size} collections`;
    },
  },
  {
    name: 'compare',
    title: 'compare: every expected record with the new database',
    async run(c, progress) {
      const existing = await c.neu!.listCollections();
      for (const [name, t] of c.targets) {
        progress(name);
        const actual = new Map<string, MigrationRecord>();
        const info = existing.find((x) => x.name === name);
        if (info) for await (const page of c.neu!.read(info, 500, c.o.signal)) for (const r of page) actual.set(r.id, r);
        const queries = c.queries.filter((q) => q.target === name);
        await c.gate.compareCollection(name, readJsonl<MigrationRecord>(stagedFile(c, name)), t.count, actual, c.transform!.schemaOf(name), { space: t.space, queries });
      }
      return `${c.targets.size} collections compared`;
    },
  },
];

export async function runValidate(o: ValidateOptions): Promise<GateReport> {
  if (o.autoRollback && !o.backup) throw new UserError('--auto-rollback needs --backup FILE (the backup migrate wrote in its checkpoint dir, or any .jsonl export)');
  if (o.backup) await fs.access(o.backup).catch(() => { throw new UserError(`--backup ${o.backup}: no such file`); });
  const t0 = performance.now();
  const md = path.resolve(o.output);
  const json = md.replace(/\.md$/i, '') + '.json';
  await fs.mkdir(path.dirname(md), { recursive: true });
  const report: GateReport = {
    overall_status: 'FAILED', rollback_triggered: false, rollback_reason: null, old_db: o.oldUrl, new_db: o.newUrl, transform: o.transform,
    generated_at: '', elapsed_seconds: 0, data_loss_percentage: 0, semantic_divergence_percentage: 0, checks: [],
    steps: initialReports(STEPS), report_files: { markdown: md, json },
  };
  const staging = await fs.mkdtemp(path.join(os.tmpdir(), 'chroma-ferry-gate-'));
  const ctx: Ctx = { o, collections: [], staging, targets: new Map(), queries: [], gate: new GateChecker(o.sample), report };
  try {
    const r = await runSteps(STEPS, ctx, { output: o.outputMode, signal: o.signal, stack: new CompensationStack(), reports: report.steps });
    if (!r.ok) {
      if (r.error instanceof UserError) throw r.error;
      report.error = describeError(r.error, o.signal);
    } else {
      report.checks = ctx.gate.results();
      const statuses = report.checks.map((x) => x.status);
      report.overall_status = statuses.includes('FAILED') ? 'FAILED' : statuses.includes('WARNING') ? 'WARNING' : 'PASSED';
      report.data_loss_percentage = Number(report.checks[0]!.figures.data_loss_percentage);
      report.semantic_divergence_percentage = Number(report.checks[3]!.figures.semantic_divergence_percentage);
    }
  } finally {
    await ctx.old?.close().catch(() => undefined);
    await ctx.neu?.close().catch(() => undefined);
    await fs.rm(staging, { recursive: true, force: true });
  }
  if (report.overall_status === 'FAILED') {
    const failed = report.checks.filter((x) => x.status === 'FAILED').map((x) => x.name);
    report.rollback_reason = report.error ? `validation did not complete: ${report.error}`
      : failed.map((n) => `${n} failed: ${ROLLBACK_REASONS[n]}`).join('; ');
    if (o.autoRollback) {
      report.rollback_triggered = true;
      const restored = await runRestore({ backup: o.backup!, targetUrl: o.newUrl, sample: 200, output: o.outputMode, signal: o.signal });
      report.rollback = { ok: restored.ok, removed: restored.removed, restored: restored.restored, mismatches: restored.mismatches, reportFile: restored.reportFile, error: restored.error };
    }
  }
  report.generated_at = new Date().toISOString();
  report.elapsed_seconds = Math.round((performance.now() - t0) / 10) / 100;
  await writeJsonAtomic(json, report);
  const tmp = `${md}.${process.pid}.tmp`;
  await fs.writeFile(tmp, formatGateMarkdown(report));
  await fs.rename(tmp, md);
  return report;
}

export const VALIDATE_STEPS = STEPS.map((s) => s.name);

/** Exit codes documented in README: 0 PASSED, 1 FAILED, 3 WARNING (2: usage). */
export function gateExitCode(r: GateReport): number {
  return r.overall_status === 'PASSED' ? 0 : r.overall_status === 'WARNING' ? 3 : 1;
}

export function formatGateMarkdown(r: GateReport): string {
  const icon = (s: CheckStatus) => (s === 'PASSED' ? '✅' : s === 'WARNING' ? '⚠️' : '❌');
  const lines = [
    `# Validation report: ${r.overall_status}`, '',
    `- old database: \`${r.old_db}\``, `- new database: \`${r.new_db}\``, `- transform: \`${r.transform}\``,
    `- generated: ${r.generated_at}, elapsed ${r.elapsed_seconds} s`,
    `- data loss: ${r.data_loss_percentage}%, semantic divergence: ${r.semantic_divergence_percentage}%`,
    `- rollback triggered: ${r.rollback_triggered ? 'YES' : 'NO'}${r.rollback_reason ? ` (${r.rollback_reason})` : ''}`,
  ];
  if (r.error) lines.push(`- error: ${r.error}`);
  lines.push('', '| # | check | status | figures |', '| --- | --- | --- | --- |');
  for (const c of r.checks) {
    lines.push(`| ${c.id} | ${c.name} | ${icon(c.status)} ${c.status} | ${Object.entries(c.figures).map(([k, v]) => `${k}: ${v}`).join(', ')} |`);
  }
  for (const c of r.checks) {
    if (!c.details.length || c.status === 'PASSED') continue;
    lines.push('', `## ${c.id}. ${c.name}`, '', ...c.details.map((d) => `- ${d.replace(/\|/g, '\\|')}`));
  }
  if (r.rollback) {
    lines.push('', '## Rollback', '', `- ${r.rollback.ok ? 'restored' : 'FAILED'} from the backup; report ${r.rollback.reportFile}`);
    for (const n of r.rollback.removed) lines.push(`- removed ${n}`);
    for (const x of r.rollback.restored) lines.push(`- restored ${x.name}: ${x.records} records`);
  }
  return `${lines.join('\n')}\n`;
}

export function formatGateSummary(r: GateReport): string {
  const lines = [`VALIDATION ${r.overall_status}  ${r.old_db} -> ${r.new_db} (${r.elapsed_seconds} s)`];
  if (r.error) lines.push(`  error: ${r.error}`);
  for (const c of r.checks) lines.push(`  ${String(c.id)}. ${c.name.padEnd(28)} ${c.status.padEnd(7)} ${Object.entries(c.figures).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  lines.push(`  rollback triggered: ${r.rollback_triggered ? 'YES' : 'NO'}${r.rollback_reason ? ` (${r.rollback_reason})` : ''}`);
  if (r.rollback) lines.push(`  rollback: ${r.rollback.ok ? 'restored from the backup' : `FAILED: ${r.rollback.error}`}`);
  lines.push(`  report: ${r.report_files.markdown} and ${r.report_files.json}`);
  return lines.join('\n');
}

function stagedFile(c: Ctx, target: string): string {
  return path.join(c.staging, `${crypto.createHash('sha256').update(target).digest('hex').slice(0, 16)}.jsonl`);
}

/** `--test-queries FILE`: a JSON array (or JSON lines) of { collection, embedding, k?, where? }. */
async function loadTestQueries(c: Ctx, file: string): Promise<QueryCase[]> {
  let raw: string;
  try {
    raw = await fs.readFile(file, 'utf8');
  } catch {
    throw new UserError(`--test-queries ${file}: no such file`);
  }
  let items: unknown[];
  try {
    items = raw.trim().startsWith('[') ? (JSON.parse(raw) as unknown[]) : raw.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  } catch {
    throw new UserError(`--test-queries ${file}: not JSON (a list of { "collection", "embedding", "k", "where" })`);
  }
  return items.map((it, i) => {
    const q = it as { collection?: string; embedding?: number[]; k?: number; where?: Record<string, unknown> };
    if (typeof q.collection !== 'string' || !Array.isArray(q.embedding)) {
      throw new UserError(`--test-queries ${file}: query ${i + 1} needs "collection" (an old collection) and "embedding" (a vector)`);
    }
    // The target most of that collection's records went to.
    let target = '';
    let best = -1;
    for (const [name, t] of c.targets) {
      const n = t.from.get(q.collection) ?? 0;
      if (n > best) { best = n; target = name; }
    }
    if (best <= 0) throw new UserError(`--test-queries ${file}: query ${i + 1}: no collection ${q.collection} in the old database`);
    return { label: `query ${i + 1} (${q.collection})`, source: q.collection, target, embedding: q.embedding, k: q.k ?? c.o.topK, where: q.where };
  });
}

function relabel(e: unknown, from: string, to: string): unknown {
  if (e instanceof UserError) return new UserError(e.message.replaceAll(from, to));
  return e;
}

export { CHECK_NAMES };
