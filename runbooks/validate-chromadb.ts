/**
 * Runbook: the validation gate between a migration and the cutover (seed 004).
 *
 *   (before)  the migration's record (backup header, checkpoint): a contradicting --transform is refused
 *   connect   open the old and the new database read-only; load the migration's transform
 *   expected  the old database through the transform (and its validator) into a temp staging dir
 *   compare   per target collection: the expected records against the new database's, and the exact
 *             top-k of the same query vectors over both (all eight checks)
 *   report    report.md + report.json: overall status, per-check figures, elapsed time, and the
 *             decision: rollback_triggered whenever FAILED (a separate rollback job acts on it)
 *   rollback  with --auto-rollback and a FAILED gate: `restore` from the backup (rollback_executed)
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
import { writeJsonAtomic } from '../lib/engine/atomic-file.ts';
import { CompensationStack } from '../lib/engine/compensation.ts';
import { UserError } from '../lib/common/errors.ts';
import { CHECK_NAMES, GateChecker, ROLLBACK_REASONS, type CheckResult, type CheckStatus } from '../lib/gate/checks.ts';
import { resolveGateMigration, type GateMigration } from '../lib/gate/recorded-migration.ts';
import { endpointKind, openSource, type Endpoint } from '../lib/migrate/endpoints.ts';
import { JsonlEndpoint } from '../lib/migrate/jsonl-endpoint.ts';
import { readJsonl } from '../lib/migrate/jsonl-lines.ts';
import { loadTransform, withRenames, type Transform } from '../lib/migrate/transform.ts';
import type { CollectionInfo, DistanceSpace, MigrationRecord } from '../lib/migrate/types.ts';
import { RecordValidator } from '../lib/migrate/validate.ts';
import type { OutputMode } from '../lib/report/output.ts';
import { shQuote } from '../lib/remote/shell.ts';
import { describeError, initialReports, runSteps, type StepDef, type StepReport } from '../lib/engine/runner.ts';
import { runRestore, type RestoreReport } from './restore-chromadb.ts';

export interface ValidateOptions {
  oldUrl: string;
  newUrl: string;
  /** undefined: the one the migration recorded, else none. */
  transform?: string;
  prefix?: string;
  /** The migration's checkpoint dir (explicit: --checkpoint-dir given; else migrate's default, used when it is of this migration). */
  checkpoint?: { dir: string; explicit: boolean };
  testQueries?: string;
  /** Compare embeddings of N records per collection (default: every record). */
  sample?: number;
  /** Query vectors sampled per old collection when no --test-queries. */
  queries: number;
  topK: number;
  output: string;
  autoRollback: boolean;
  /** The pre-migration backup; default: the one the migration's checkpoint names. */
  backup?: string;
  outputMode: OutputMode;
  signal: AbortSignal;
}

/** What `restore` did when this run carried out the rollback. */
export interface RollbackResult {
  ok: boolean;
  backup: string;
  removed: string[];
  restored: RestoreReport['restored'];
  mismatches: string[];
  report_file: string | null;
  error?: string;
}

export interface GateReport {
  overall_status: CheckStatus;
  /** The gate's decision: true iff overall_status is FAILED (a rollback job reading report.json acts on it). */
  rollback_triggered: boolean;
  rollback_reason: string | null;
  /** Whether this run carried out the rollback (--auto-rollback), and how it went. */
  rollback_executed: boolean;
  rollback_result: RollbackResult | null;
  /** The backup a rollback restores (--backup, else the migration's checkpoint); null when unknown. */
  rollback_backup: string | null;
  old_db: string;
  new_db: string;
  transform: string;
  /** flag: --transform (agreeing with the migration's record, if any); recorded: the migration's; default: none. */
  transform_source: GateMigration['transform']['source'];
  transform_recorded_in: string | null;
  prefix: string | null;
  generated_at: string;
  elapsed_seconds: number;
  data_loss_percentage: number;
  semantic_divergence_percentage: number;
  checks: CheckResult[];
  steps: StepReport[];
  error?: string;
  notes: string[];
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
  m: GateMigration;
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
      const t = c.m.transform;
      c.transform = withRenames(await loadTransform(t.spec, { prefix: t.prefix }), t.renames);
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

export async function runValidate(o: ValidateOptions, prepared?: GateMigration): Promise<GateReport> {
  const m = prepared ?? (await prepareValidate(o));
  const t0 = performance.now();
  const md = path.resolve(o.output);
  const json = md.replace(/\.md$/i, '') + '.json';
  await fs.mkdir(path.dirname(md), { recursive: true });
  const report: GateReport = {
    overall_status: 'FAILED', rollback_triggered: false, rollback_reason: null, rollback_executed: false, rollback_result: null, rollback_backup: m.backup,
    old_db: o.oldUrl, new_db: o.newUrl, transform: m.transform.spec, transform_source: m.transform.source, transform_recorded_in: m.transform.recordedIn,
    prefix: m.transform.prefix ?? null, generated_at: '', elapsed_seconds: 0, data_loss_percentage: 0, semantic_divergence_percentage: 0, checks: [],
    steps: initialReports(STEPS), notes: [...m.notes], report_files: { markdown: md, json },
  };
  const staging = await fs.mkdtemp(path.join(os.tmpdir(), 'chroma-ferry-gate-'));
  const ctx: Ctx = { o, m, collections: [], staging, targets: new Map(), queries: [], gate: new GateChecker(o.sample), report };
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
    report.rollback_triggered = true;
    report.rollback_reason = report.error ? `validation did not complete: ${report.error}`
      : failed.map((n) => `${n} failed: ${ROLLBACK_REASONS[n]}`).join('; ');
    if (o.autoRollback && o.signal.aborted) report.notes.push('interrupted: the rollback was not run');
    else if (o.autoRollback) report.rollback_result = await rollBack(m.backup!, o);
    report.rollback_executed = report.rollback_result !== null;
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

/** The rollback this run carries out: `restore` of the backup onto the new database. */
async function rollBack(backup: string, o: ValidateOptions): Promise<RollbackResult> {
  try {
    const r = await runRestore({ backup, targetUrl: o.newUrl, sample: 200, output: o.outputMode, signal: o.signal });
    return { ok: r.ok, backup: r.backup, removed: r.removed, restored: r.restored, mismatches: r.mismatches, report_file: r.reportFile, error: r.error };
  } catch (e) {
    return { ok: false, backup, removed: [], restored: [], mismatches: [], report_file: null, error: e instanceof Error ? e.message : String(e) };
  }
}

/** The command that carries out the rollback when this run did not. */
export function restoreCommand(r: GateReport): string {
  const backup = r.rollback_backup ? shQuote(r.rollback_backup) : 'CHECKPOINT_DIR/RUN/backup.jsonl';
  return `chroma-ferry restore --backup ${backup} --target-url ${shQuote(r.new_db)} --yes`;
}

function triggeredLine(r: GateReport): string {
  return `rollback triggered: ${r.rollback_triggered ? 'YES' : 'NO'}${r.rollback_reason ? ` (${r.rollback_reason})` : ''}`;
}

function executedLine(r: GateReport, code: (s: string) => string): string {
  const x = r.rollback_result;
  if (x) return `rollback executed: YES, ${x.ok ? `restored from ${code(x.backup)}` : `FAILED: ${x.error ?? 'restore failed'}`}${x.report_file ? ` (restore report ${code(x.report_file)})` : ''}`;
  if (!r.rollback_triggered) return 'rollback executed: NO';
  return `rollback executed: NO (run ${code(restoreCommand(r))})`;
}

function transformLine(r: GateReport, code: (s: string) => string): string {
  const why = r.transform_source === 'recorded' ? ` (recorded by the migration in ${code(r.transform_recorded_in!)})`
    : r.transform_source === 'default' ? ' (no --transform and no migration record)'
      : r.transform_recorded_in ? ` (as recorded by the migration in ${code(r.transform_recorded_in)})` : '';
  return `transform: ${code(r.transform)}${r.prefix ? ` --prefix ${r.prefix}` : ''}${why}`;
}

/** Exit codes documented in README: 0 PASSED, 1 FAILED, 3 WARNING (2: usage). */
export function gateExitCode(r: GateReport): number {
  return r.overall_status === 'PASSED' ? 0 : r.overall_status === 'WARNING' ? 3 : 1;
}

export function formatGateMarkdown(r: GateReport): string {
  const icon = (s: CheckStatus) => (s === 'PASSED' ? '✅' : s === 'WARNING' ? '⚠️' : '❌');
  const lines = [
    `# Validation report: ${r.overall_status}`, '',
    `- old database: \`${r.old_db}\``, `- new database: \`${r.new_db}\``, `- ${transformLine(r, tick)}`,
    `- generated: ${r.generated_at}, elapsed ${r.elapsed_seconds} s`,
    `- data loss: ${r.data_loss_percentage}%, semantic divergence: ${r.semantic_divergence_percentage}%`,
    `- ${triggeredLine(r)}`,
    `- ${executedLine(r, tick)}`,
  ];
  if (r.error) lines.push(`- error: ${r.error}`);
  for (const n of r.notes) lines.push(`- note: ${n}`);
  lines.push('', '| # | check | status | figures |', '| --- | --- | --- | --- |');
  for (const c of r.checks) {
    lines.push(`| ${c.id} | ${c.name} | ${icon(c.status)} ${c.status} | ${Object.entries(c.figures).map(([k, v]) => `${k}: ${v}`).join(', ')} |`);
  }
  for (const c of r.checks) {
    if (!c.details.length || c.status === 'PASSED') continue;
    lines.push('', `## ${c.id}. ${c.name}`, '', ...c.details.map((d) => `- ${d.replace(/\|/g, '\\|')}`));
  }
  const x = r.rollback_result;
  if (x) {
    lines.push('', '## Rollback', '', `- ${x.ok ? 'restored' : 'FAILED'} from \`${x.backup}\`${x.report_file ? `; restore report \`${x.report_file}\`` : ''}`);
    if (x.error) lines.push(`- error: ${x.error}`);
    for (const n of x.removed) lines.push(`- removed ${n} (created by the migration)`);
    for (const c of x.restored) lines.push(`- restored ${c.name}: ${c.records} records${c.actual !== undefined ? `, ${c.actual} on the target` : ''}`);
    for (const p of x.mismatches.slice(0, 20)) lines.push(`- problem: ${p}`);
  }
  return `${lines.join('\n')}\n`;
}

export function formatGateSummary(r: GateReport): string {
  const lines = [`VALIDATION ${r.overall_status}  ${r.old_db} -> ${r.new_db} (${r.elapsed_seconds} s)`];
  lines.push(`  ${transformLine(r, (s) => s)}`);
  if (r.error) lines.push(`  error: ${r.error}`);
  for (const n of r.notes) lines.push(`  note: ${n}`);
  for (const c of r.checks) lines.push(`  ${String(c.id)}. ${c.name.padEnd(28)} ${c.status.padEnd(7)} ${Object.entries(c.figures).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  lines.push(`  ${triggeredLine(r)}`, `  ${executedLine(r, (s) => s)}`);
  lines.push(`  report: ${r.report_files.markdown} and ${r.report_files.json}`);
  return lines.join('\n');
}

function tick(s: string): string {
  return `\`${s}\``;
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
