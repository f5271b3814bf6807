/**
 * Runbook: API-level migration (seeds 001, 002). Source -> transform -> validate -> sink, through
 * a local staging dir, so memory stays flat as the dataset grows:
 *
 *   connect    open the source read-only and the target; batch size; checkpoint dir writable
 *   export     every source collection paged into staging/export/*.jsonl (a concurrent writer is caught)
 *   transform  transform + validate each record into staging/staged/<target>.jsonl; gate on --min-valid
 *   backup     the target collections about to be written, exported to staging/backup.jsonl
 *   import     batched upserts (<= the target's max batch size), retried, checkpoint after each batch
 *   verify     counts per target collection, and a sample compared field by field with the staged records
 *
 * `--dry-run` runs connect, export and transform and writes nothing to the target. `--resume`
 * continues the checkpoint's run: finished phases are not redone, imported batches not re-sent.
 */
import crypto from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import pRetry from 'p-retry';
import { CompensationStack, type UndoOutcome } from '../lib/compensation.ts';
import { UserError } from '../lib/errors.ts';
import { CheckpointStore, MIGRATE_PHASES, type MigrateCheckpoint, type MigratePhase } from '../lib/migrate/checkpoint.ts';
import { SourceChangedError } from '../lib/migrate/chroma-endpoint.ts';
import { openSource, openTarget, type Endpoint } from '../lib/migrate/endpoints.ts';
import { JsonlEndpoint } from '../lib/migrate/jsonl-endpoint.ts';
import { readJsonl } from '../lib/migrate/jsonl-lines.ts';
import { JsonlLog } from '../lib/migrate/log.ts';
import { loadTransform, withRenames, type Transform } from '../lib/migrate/transform.ts';
import { recordTransform } from '../lib/migrate/transform-record.ts';
import type { CollectionInfo, MigrationRecord } from '../lib/migrate/types.ts';
import { RecordValidator } from '../lib/migrate/validate.ts';
import type { OutputMode } from '../lib/output.ts';
import { describeError, initialReports, runSteps, type StepDef, type StepReport } from '../lib/runbook-runner.ts';

export interface MigrateOptions {
  sourceUrl: string;
  targetUrl: string;
  /** undefined: the target's max batch size, capped by memory. */
  batchSize?: number;
  dryRun: boolean;
  resume: boolean;
  checkpointDir: string;
  logDir: string;
  filterCollections: string[];
  transform: string;
  /** seed-schema: target collection prefix (default: from the source collection's name). */
  prefix?: string;
  minValid: number;
  workers: number;
  /** Every log event on stderr as well. */
  verbose?: boolean;
  /** `--rename a=b`: target collection a is written as b. */
  renames?: Record<string, string>;
  /** Records per target collection compared with the staged ones in verify. */
  verifySample: number;
  output: OutputMode;
  signal: AbortSignal;
}

export interface MigrateSummary {
  ok: boolean;
  runId: string;
  source: string;
  target: string;
  transform: string;
  dryRun: boolean;
  resumed: boolean;
  batchSize: number;
  steps: StepReport[];
  collections: { source: string; exported: number }[];
  targets: { name: string; from: string; expected: number; actual?: number; existedBefore: boolean }[];
  validation?: { total: number; valid: number; validShare: number; issues: { issue: string; records: number }[] };
  import: { batchesSent: number; batchesSkipped: number; recordsSent: number; retries: number; recordsPerSecond?: number };
  verify?: { sampled: number; mismatches: string[] };
  checkpointFile: string;
  /** The persist dir this run created as the target (absolute), when --target-url named a new one. */
  createdDir?: string;
  backupFile?: string;
  logFile: string;
  warnings: string[];
  error?: string;
  rollback: UndoOutcome[];
}

interface Ctx {
  o: MigrateOptions;
  store: CheckpointStore;
  cp: MigrateCheckpoint;
  log: JsonlLog;
  summary: MigrateSummary;
  source?: Endpoint;
  target?: Endpoint;
  prepareWrite?: (touched: string[]) => Promise<void>;
  transform?: Transform;
  collections: CollectionInfo[];
  maxBatch: number;
  existedBefore: Map<string, CollectionInfo>;
}

export const MIGRATE_STEPS = MIGRATE_PHASES;

const STEP_TITLES: Record<MigratePhase, string> = {
  connect: 'connect: source (read-only), target, batch size, checkpoint dir',
  export: 'export: page every source collection into the staging dir',
  transform: 'transform + validate: each record into its target collection',
  backup: 'backup: the target collections about to be written',
  import: 'import: batched upserts, checkpoint after each batch',
  verify: 'verify: counts and a sample compared with the source',
};

/**
 * Bytes of records in one page or batch, roughly (the JSON of the embeddings dominates). Small
 * enough that the peak memory stays flat as the dataset grows (V8 grows its heap with the size
 * of what is live at a collection, so big batches ratchet it up), large enough that the target's
 * ingest rate is not lowered (measured: 614-record batches of 768-d ingest as fast as 5,461).
 */
const MEMORY_BUDGET_BYTES = 12 * 1024 * 1024;

export async function runMigrate(o: MigrateOptions): Promise<MigrateSummary> {
  const store = new CheckpointStore(path.resolve(o.checkpointDir));
  await store.ensureWritable();
  let cp: MigrateCheckpoint | null = null;
  if (o.resume) {
    cp = await store.load();
    if (!cp) throw new UserError(`--resume: no checkpoint in ${store.dir}; run without --resume (or pass the --checkpoint-dir of the run to continue)`);
    const same = cp.source === o.sourceUrl && cp.target === o.targetUrl && cp.transform === o.transform;
    if (!same) {
      throw new UserError(`--resume: the checkpoint in ${store.dir} is of ${cp.source} -> ${cp.target} (transform ${cp.transform}); pass the same --source-url, --target-url and --transform`);
    }
  }
  const runId = cp?.runId ?? `${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '')}-${crypto.randomBytes(3).toString('hex')}`;
  cp ??= {
    version: 1, runId, source: o.sourceUrl, target: o.targetUrl, transform: o.transform, batchSize: 0,
    stagingDir: path.join(store.dir, runId), phases: {}, exported: {}, targets: {}, updatedAt: '',
  };
  cp.transformRecord ??= await recordTransform(o.transform, { prefix: o.prefix, renames: o.renames });
  await fs.mkdir(path.resolve(o.logDir), { recursive: true }).catch((e: NodeJS.ErrnoException) => {
    throw new UserError(`--log-dir ${o.logDir} cannot be created (${e.code}); pass a writable directory`);
  });
  const log = new JsonlLog(path.join(path.resolve(o.logDir), `migrate-${runId}.jsonl`), o.verbose);
  const summary: MigrateSummary = {
    ok: false, runId, source: o.sourceUrl, target: o.targetUrl, transform: o.transform, dryRun: o.dryRun, resumed: o.resume,
    batchSize: 0, steps: initialReports(MIGRATE_PHASES.map((name) => ({ name }))), collections: [], targets: [],
    import: { batchesSent: 0, batchesSkipped: 0, recordsSent: 0, retries: 0 },
    checkpointFile: store.file, logFile: log.file, warnings: [], rollback: [],
  };
  const ctx: Ctx = { o, store, cp, log, summary, collections: [], maxBatch: 0, existedBefore: new Map() };
  const stack = new CompensationStack();
  const steps: StepDef<Ctx>[] = MIGRATE_PHASES.map((name) => ({ name, title: STEP_TITLES[name], run: STEPS[name] }));
  await log.write({ event: 'start', runId, source: o.sourceUrl, target: o.targetUrl, transform: o.transform, dryRun: o.dryRun, resume: o.resume });
  try {
    const r = await runSteps(steps, ctx, {
      output: o.output, signal: o.signal, stack, reports: summary.steps,
      onStatus: async (step, status) => { await log.write({ event: 'step', step, status }); },
    });
    summary.ok = r.ok;
    summary.rollback = r.rollback;
    if (!r.ok) {
      summary.error = describeError(r.error, o.signal);
      await log.write({ event: 'failed', error: summary.error });
      // Refused before anything was written: a one-line user error (exit 2).
      if (r.error instanceof UserError && !cp.phases.backup) throw r.error;
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

type Step = (c: Ctx, progress: (line: string) => void) => Promise<string | void>;

const STEPS: Record<MigratePhase, Step> = {
  async connect(c) {
    const { o } = c;
    c.source = await openSource(o.sourceUrl, { signal: o.signal });
    const t = await openTarget(o.targetUrl, { resume: o.resume, dryRun: o.dryRun });
    c.target = t.endpoint;
    c.prepareWrite = t.prepareWrite;
    c.summary.createdDir = t.createdDir;
    c.transform = withRenames(await loadTransform(o.transform, { prefix: o.prefix }), o.renames ?? {});
    c.collections = await c.source.listCollections(o.filterCollections);
    if (c.collections.length === 0) throw new UserError(`${c.source.label} has no collections to migrate`);
    c.maxBatch = await c.target.maxBatchSize();
    c.summary.collections = c.collections.map((s) => ({ source: s.name, exported: c.cp.exported[s.name] ?? 0 }));
    return `${c.collections.length} collections (${c.collections.reduce((n, s) => n + s.count, 0)} records) on ${c.source.label}; target max batch ${c.maxBatch}`;
  },

  async export(c, progress) {
    const { o, cp } = c;
    if (cp.phases.export) return restoredNote(c, 'export');
    const dir = path.join(cp.stagingDir, 'export');
    await fs.mkdir(dir, { recursive: true });
    const total = c.collections.reduce((n, s) => n + s.count, 0);
    let done = 0;
    const rate = rateMeter();
    const limit = pLimit(Math.max(1, o.workers));
    await Promise.all(c.collections.map((col) => limit(async () => {
      const file = exportFile(cp, col.name);
      for (let attempt = 1; ; attempt++) {
        try {
          const n = await writeJsonl(file, c.source!.read(col, pageSizeFor(c, col), o.signal), (k) => {
            done += k;
            progress(`${done}/${total} records, ${rate(done)}`);
          });
          cp.exported[col.name] = n;
          break;
        } catch (e) {
          done -= (e as { partialCount?: number }).partialCount ?? 0;
          if (!(e instanceof SourceChangedError)) throw e;
          await c.log.write({ event: 'source_changed', collection: col.name, attempt, message: e.message });
          if (attempt >= 2) {
            throw new UserError(`${e.message}; stop the writers (or export a copy: pass the persist directory or a snapshot) and run again`);
          }
          c.summary.warnings.push(`${col.name}: the source changed during the export; read again`);
          col.count = (await c.source!.listCollections([col.name]))[0]!.count;
        }
      }
    })));
    cp.phases.export = 'done';
    await c.store.save(cp);
    c.summary.collections = c.collections.map((s) => ({ source: s.name, exported: cp.exported[s.name] ?? 0 }));
    return `${Object.values(cp.exported).reduce((a, b) => a + b, 0)} records from ${c.collections.length} collections`;
  },

  async transform(c, progress) {
    const { o, cp } = c;
    if (cp.phases.transform) return restoredNote(c, 'transform');
    const stagedDir = path.join(cp.stagingDir, 'staged');
    // `none` without renames stages every valid record unchanged: when none is rejected, the staged
    // file is the export file (a hard link), so the records are parsed to validate but not rewritten.
    const identity = o.transform === 'none' && Object.keys(o.renames ?? {}).length === 0;
    let staged = await stageRecords(c, stagedDir, progress, !identity);
    if (identity && staged.validator.valid === staged.validator.total) {
      for (const col of c.collections) {
        if (!staged.writers.has(col.name)) continue; // an empty collection: nothing staged
        await fs.link(exportFile(cp, col.name), stagedFile(cp, col.name)).catch(() => fs.copyFile(exportFile(cp, col.name), stagedFile(cp, col.name)));
      }
      await fs.writeFile(path.join(cp.stagingDir, 'rejected.jsonl'), '');
    } else if (identity) {
      staged = await stageRecords(c, stagedDir, progress, true);
    }
    const { validator, writers } = staged;
    const ranked = validator.ranked();
    cp.validation = { total: validator.total, valid: validator.valid, issues: ranked };
    c.summary.validation = { ...cp.validation, validShare: validator.validShare };
    await c.log.write({ event: 'validation', ...c.summary.validation });
    if (validator.validShare < o.minValid) {
      const top = ranked.slice(0, 3).map((i) => `${i.issue} (${i.records})`).join(', ');
      throw new ValidationGateError(
        `validation gate: ${validator.valid}/${validator.total} records valid (${pct(validator.validShare)}), under --min-valid ${o.minValid}; ` +
          `most frequent issues: ${top}; nothing was written (rejected records listed in ${path.join(cp.stagingDir, 'rejected.jsonl')})`,
      );
    }
    cp.targets = {};
    for (const [name, w] of writers) {
      cp.targets[name] = { expected: w.ids.size, from: w.from, dimension: validator.dimensionOf(name), batchesDone: 0, recordsDone: 0 };
    }
    cp.phases.transform = 'done';
    await c.store.save(cp);
    fillTargets(c);
    return `${validator.valid}/${validator.total} valid (${pct(validator.validShare)}) into ${writers.size} target collections` +
      (ranked.length ? `; issues: ${ranked.slice(0, 3).map((i) => `${i.issue} ${i.records}`).join(', ')}` : '');
  },

  async backup(c) {
    const { o, cp } = c;
    const names = Object.keys(cp.targets);
    c.existedBefore = await c.target!.existing(names);
    fillTargets(c);
    if (o.dryRun) return 'skipped: --dry-run';
    if (cp.phases.backup) return restoredNote(c, 'backup');
    // Refuse a target collection whose distance differs before anything is written.
    for (const name of names) {
      const have = c.existedBefore.get(name);
      const want = c.transform!.targetCollection(name, sourceOf(c, name));
      const dim = cp.targets[name]!.dimension;
      if (have && (have.space !== want.space || (have.dimension !== null && dim !== null && have.dimension !== dim))) {
        throw new UserError(
          `collection ${name} exists on ${c.target!.label} with distance ${have.space}${have.dimension !== null ? ` and size ${have.dimension}` : ''}, ` +
            `the migrated records need ${want.space}${dim !== null ? ` and size ${dim}` : ''}: migrate into another name (--rename ${name}=NEW) or delete it first`,
        );
      }
    }
    const file = path.join(cp.stagingDir, 'backup.jsonl');
    await fs.rm(file, { force: true });
    const backup = new JsonlEndpoint(file);
    await backup.openForWriting({ resume: false, touched: names, transform: cp.transformRecord });
    let records = 0;
    try {
      for (const info of c.existedBefore.values()) {
        await backup.ensureCollection(info);
        for await (const page of c.target!.read(info, pageSizeFor(c, info), o.signal)) {
          await backup.upsert(info.name, page);
          records += page.length;
        }
      }
    } finally {
      await backup.close();
    }
    cp.backupFile = file;
    cp.phases.backup = 'done';
    c.summary.backupFile = file;
    await c.store.save(cp);
    return `${c.existedBefore.size} existing collections (${records} records) saved to ${file}`;
  },

  async import(c, progress) {
    const { o, cp } = c;
    const targets = Object.entries(cp.targets);
    const totalRecords = targets.reduce((n, [, t]) => n + t.expected, 0);
    if (!cp.batchSize) cp.batchSize = chooseBatchSize(c);
    c.summary.batchSize = cp.batchSize;
    const batches = targets.reduce((n, [, t]) => n + Math.ceil(t.expected / cp.batchSize), 0);
    if (o.dryRun) return `skipped: --dry-run; would import ${totalRecords} records into ${targets.length} collections in ${batches} batches of up to ${cp.batchSize}`;
    if (cp.phases.import) return restoredNote(c, 'import');
    await c.prepareWrite!(targets.map(([n]) => n));
    const rate = rateMeter();
    let done = targets.reduce((n, [, t]) => n + t.recordsDone, 0);
    const t0 = performance.now();
    // Up to --workers batches in flight (over all collections); staged files are read in order, so at
    // most `workers` batches are in memory. Done batches are recorded by index (a contiguous prefix
    // plus the ones finished out of order), so a resume sends exactly the others.
    const workers = Math.max(1, o.workers);
    const inflight = new Set<Promise<void>>();
    let failure: unknown;
    for (const [name, t] of targets) {
      await c.target!.ensureCollection({ ...c.transform!.targetCollection(name, sourceOf(c, name)), dimension: t.dimension });
      t.doneAbove ??= [];
      let index = 0;
      for await (const batch of readBatches(stagedFile(cp, name), cp.batchSize)) {
        o.signal.throwIfAborted();
        if (failure) throw failure;
        const i = index++;
        if (i < t.batchesDone || t.doneAbove.includes(i)) {
          c.summary.import.batchesSkipped++;
          continue;
        }
        while (inflight.size >= workers) await Promise.race(inflight);
        if (failure) throw failure;
        const p: Promise<void> = (async () => {
          await pRetry(() => c.target!.upsert(name, batch, o.signal), {
            retries: 4, minTimeout: 250, factor: 2, signal: o.signal,
            onFailedAttempt: async (e) => {
              c.summary.import.retries++;
              await c.log.write({ event: 'retry', collection: name, batch: i, attempt: e.attemptNumber, error: e.message });
            },
          });
          markBatchDone(t, i);
          t.recordsDone += batch.length;
          c.summary.import.batchesSent++;
          c.summary.import.recordsSent += batch.length;
          done += batch.length;
          await c.store.save(cp);
          await c.log.write({ event: 'batch', collection: name, batch: i + 1, records: batch.length });
          progress(`${done}/${totalRecords} records, ${rate(done)}${etaOf(rate, done, totalRecords)}`);
        })().catch((e) => { failure ??= e; }).finally(() => { inflight.delete(p); });
        inflight.add(p);
      }
    }
    await Promise.all(inflight);
    if (failure) throw failure;
    const secs = (performance.now() - t0) / 1000;
    if (secs > 0 && c.summary.import.recordsSent) c.summary.import.recordsPerSecond = Math.round(c.summary.import.recordsSent / secs);
    cp.phases.import = 'done';
    await c.store.save(cp);
    const { batchesSent, batchesSkipped, recordsSent } = c.summary.import;
    return `${recordsSent} records in ${batchesSent} batches of up to ${cp.batchSize}` +
      (batchesSkipped ? `, ${batchesSkipped} batches done by the interrupted run` : '') +
      (c.summary.import.recordsPerSecond ? ` (${c.summary.import.recordsPerSecond} records/s)` : '');
  },

  async verify(c) {
    const { o, cp } = c;
    if (o.dryRun) return 'skipped: --dry-run';
    const mismatches: string[] = [];
    let sampled = 0;
    for (const [name, t] of Object.entries(cp.targets)) {
      const actual = await c.target!.count(name);
      const entry = c.summary.targets.find((x) => x.name === name);
      if (entry) entry.actual = actual;
      const before = c.existedBefore.get(name);
      if (!before && actual !== t.expected) mismatches.push(`${name}: ${actual} records, expected ${t.expected}`);
      if (before && actual < t.expected) mismatches.push(`${name}: ${actual} records, expected at least ${t.expected}`);
      const sample = await sampleStaged(stagedFile(cp, name), t.expected, o.verifySample);
      for (let i = 0; i < sample.length; i += 100) {
        const want = sample.slice(i, i + 100);
        const got = new Map((await c.target!.get(name, want.map((r) => r.id))).map((r) => [r.id, r]));
        for (const w of want) {
          const problem = compareRecords(w, got.get(w.id));
          if (problem) mismatches.push(`${name}/${w.id}: ${problem}`);
        }
        sampled += want.length;
      }
    }
    c.summary.verify = { sampled, mismatches: mismatches.slice(0, 50) };
    cp.phases.verify = 'done';
    await c.store.save(cp);
    if (mismatches.length) throw new Error(`verify: ${mismatches.length} problems, first: ${mismatches.slice(0, 3).join('; ')}`);
    return `${Object.keys(cp.targets).length} collections, counts equal; ${sampled} records compared field by field`;
  },
};

/**
 * Transform + validate every exported record into its target collection; with `write`, valid
 * records go to the staged files and rejected ones (with their issues) to rejected.jsonl.
 */
async function stageRecords(c: Ctx, stagedDir: string, progress: (line: string) => void, write: boolean): Promise<{
  validator: RecordValidator; writers: Map<string, { ids: Set<string>; from: string }>;
}> {
  const { cp } = c;
  await fs.rm(stagedDir, { recursive: true, force: true });
  await fs.mkdir(stagedDir, { recursive: true });
  const validator = new RecordValidator();
  const writers = new Map<string, { out?: WriteStream; ids: Set<string>; from: string }>();
  const rejected = write ? createWriteStream(path.join(cp.stagingDir, 'rejected.jsonl')) : undefined;
  const put = (ws: WriteStream, line: string) => new Promise<void>((res, rej) => ws.write(line, (e) => (e ? rej(e) : res())));
  for (const col of c.collections) {
    for await (const r of readJsonl<MigrationRecord>(exportFile(cp, col.name))) {
      for (const t of await c.transform!.apply(r, col)) {
        const issues = validator.check(t.collection, t.record, c.transform!.schemaOf(t.collection));
        const refused = issues.length ? null : c.target!.refuseRecord?.(t.record);
        if (refused) throw new UserError(`${refused}; nothing was written`);
        if (issues.length) {
          if (rejected) await put(rejected, `${JSON.stringify({ collection: t.collection, from: col.name, id: t.record.id, issues })}\n`);
          continue;
        }
        let w = writers.get(t.collection);
        if (!w) {
          w = { out: write ? createWriteStream(stagedFile(cp, t.collection)) : undefined, ids: new Set(), from: col.name };
          writers.set(t.collection, w);
        }
        w.ids.add(t.record.id);
        if (w.out) await put(w.out, `${JSON.stringify(t.record)}\n`);
      }
      if (validator.total % 500 === 0) progress(`${validator.total} records, ${validator.total - validator.valid} with issues`);
    }
  }
  await Promise.all([...writers.values()].map((w) => new Promise<void>((res) => (w.out ? w.out.end(res) : res()))));
  if (rejected) await new Promise<void>((res) => rejected.end(res));
  return { validator, writers };
}

/** The validation gate stopped the run before any write. */
export class ValidationGateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ValidationGateError';
  }
}

/** Batch `i` of a target is written: extend the contiguous prefix, or remember it as done out of order. */
function markBatchDone(t: { batchesDone: number; doneAbove?: number[] }, i: number): void {
  const above = new Set(t.doneAbove ?? []);
  above.add(i);
  while (above.has(t.batchesDone)) {
    above.delete(t.batchesDone);
    t.batchesDone++;
  }
  t.doneAbove = [...above].sort((a, b) => a - b);
}

function restoredNote(c: Ctx, phase: MigratePhase): string {
  fillTargets(c);
  if (phase === 'export') c.summary.collections = c.collections.map((s) => ({ source: s.name, exported: c.cp.exported[s.name] ?? 0 }));
  if (phase === 'transform' && c.cp.validation) c.summary.validation = { ...c.cp.validation, validShare: c.cp.validation.total ? c.cp.validation.valid / c.cp.validation.total : 1 };
  if (phase === 'backup') c.summary.backupFile = c.cp.backupFile;
  return `done by the interrupted run ${c.cp.runId}`;
}

function fillTargets(c: Ctx): void {
  c.summary.targets = Object.entries(c.cp.targets).map(([name, t]) => ({
    name, from: t.from, expected: t.expected, existedBefore: c.existedBefore.has(name),
  }));
}

function sourceOf(c: Ctx, target: string): CollectionInfo {
  const from = c.cp.targets[target]?.from;
  return c.collections.find((s) => s.name === from) ?? c.collections[0]!;
}

function exportFile(cp: MigrateCheckpoint, collection: string): string {
  return path.join(cp.stagingDir, 'export', `${safeName(collection)}.jsonl`);
}

function stagedFile(cp: MigrateCheckpoint, collection: string): string {
  return path.join(cp.stagingDir, 'staged', `${safeName(collection)}.jsonl`);
}

function safeName(name: string): string {
  return `${name.replace(/[^A-Za-z0-9._-]/g, '_')}-${crypto.createHash('sha256').update(name).digest('hex').slice(0, 8)}`;
}

function pageSizeFor(c: Ctx, col: CollectionInfo): number {
  return Math.max(1, Math.min(c.o.batchSize ?? 1000, memoryCap(col.dimension ?? 1536), 1000));
}

function memoryCap(dimension: number): number {
  return Math.max(1, Math.floor(MEMORY_BUDGET_BYTES / (dimension * 24 + 2048)));
}

/** --batch-size, else the target's max; never above the max (the server rejects larger writes). */
function chooseBatchSize(c: Ctx): number {
  const cap = memoryCap(Math.max(1, ...Object.values(c.cp.targets).map((t) => t.dimension ?? 1536)));
  if (c.o.batchSize && c.o.batchSize > c.maxBatch) {
    c.summary.warnings.push(`--batch-size ${c.o.batchSize} is above the target's max batch size ${c.maxBatch}: using ${c.maxBatch}`);
    return c.maxBatch;
  }
  return c.o.batchSize ?? Math.max(1, Math.min(c.maxBatch, cap));
}

async function writeJsonl(file: string, pages: AsyncIterable<MigrationRecord[]>, onPage: (n: number) => void): Promise<number> {
  const tmp = `${file}.partial`;
  const fh = await fs.open(tmp, 'w');
  let n = 0;
  try {
    for await (const page of pages) {
      await fh.write(page.map((r) => JSON.stringify(r)).join('\n') + '\n');
      n += page.length;
      onPage(page.length);
    }
  } catch (e) {
    await fh.close();
    await fs.rm(tmp, { force: true });
    throw Object.assign(e as Error, { partialCount: n });
  }
  await fh.close();
  await fs.rename(tmp, file);
  return n;
}

async function* readBatches(file: string, size: number): AsyncIterable<MigrationRecord[]> {
  let batch: MigrationRecord[] = [];
  for await (const r of readJsonl<MigrationRecord>(file)) {
    batch.push(r);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length) yield batch;
}

/** Every k-th staged record, about `n` of them (deterministic, one pass). */
async function sampleStaged(file: string, total: number, n: number): Promise<MigrationRecord[]> {
  if (n <= 0 || total === 0) return [];
  const step = Math.max(1, Math.floor(total / n));
  const out: MigrationRecord[] = [];
  let i = 0;
  for await (const r of readJsonl<MigrationRecord>(file)) {
    if (i++ % step === 0 && out.length < n) out.push(r);
  }
  return out;
}

/** Same document, same metadata, embedding equal within 1e-6 (float32 storage). */
export function compareRecords(want: MigrationRecord, got: MigrationRecord | undefined): string | null {
  if (!got) return 'missing on the target';
  if ((want.document ?? null) !== (got.document ?? null)) return 'document differs';
  const wm = want.metadata ?? {};
  const gm = got.metadata ?? {};
  const keys = new Set([...Object.keys(wm), ...Object.keys(gm)]);
  for (const k of keys) {
    const a = wm[k];
    const b = gm[k];
    if (typeof a === 'number' && typeof b === 'number' ? Math.abs(a - b) > 1e-9 * Math.max(1, Math.abs(a)) : a !== b) {
      return `metadata ${k}: ${JSON.stringify(b)} on the target, ${JSON.stringify(a)} in the source`;
    }
  }
  const we = want.embedding ?? [];
  const ge = got.embedding ?? [];
  if (we.length !== ge.length) return `embedding dimension ${ge.length}, expected ${we.length}`;
  for (let i = 0; i < we.length; i++) {
    if (Math.abs(we[i]! - ge[i]!) > 1e-6 * Math.max(1, Math.abs(we[i]!))) return `embedding value ${i} differs (${ge[i]} vs ${we[i]})`;
  }
  return null;
}

function rateMeter(): ((done: number) => string) & { perSecond: (done: number) => number } {
  const t0 = performance.now();
  const perSecond = (done: number) => done / Math.max(0.001, (performance.now() - t0) / 1000);
  return Object.assign((done: number) => `${Math.round(perSecond(done))} records/s`, { perSecond });
}

function etaOf(rate: ReturnType<typeof rateMeter>, done: number, total: number): string {
  const r = rate.perSecond(done);
  return r > 0 && done < total ? `, ETA ${Math.ceil((total - done) / r)} s` : '';
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

export function formatMigrateSummary(s: MigrateSummary): string {
  const lines = [`${s.ok ? (s.dryRun ? 'DRY RUN OK' : 'MIGRATED') : 'MIGRATION FAILED'}  ${s.source} -> ${s.target} (transform ${s.transform})`];
  if (s.createdDir) lines.push(`  created new persist dir ${s.createdDir}`);
  if (s.error) lines.push(`  error: ${s.error}`);
  lines.push('  steps:');
  for (const st of s.steps) {
    if (st.status === 'not run') continue;
    lines.push(`    ${st.name.padEnd(10)} ${st.status.padEnd(7)} ${`${Math.round(st.ms)} ms`.padStart(9)}${st.note ? `  ${st.note}` : ''}`);
  }
  for (const c of s.collections) lines.push(`  source ${c.source}: ${c.exported} exported`);
  for (const t of s.targets) lines.push(`  target ${t.name} (from ${t.from}): ${t.expected} expected${t.actual !== undefined ? `, ${t.actual} on the target` : ''}${t.existedBefore ? ' (existed before)' : ''}`);
  if (s.validation) {
    lines.push(`  validation: ${s.validation.valid}/${s.validation.total} valid (${pct(s.validation.validShare)})`);
    for (const i of s.validation.issues.slice(0, 8)) lines.push(`    ${i.issue}: ${i.records}`);
  }
  if (!s.dryRun) {
    lines.push(`  import: ${s.import.recordsSent} records in ${s.import.batchesSent} batches (batch size ${s.batchSize}), ${s.import.batchesSkipped} batches already done, ${s.import.retries} retries` +
      (s.import.recordsPerSecond ? `, ${s.import.recordsPerSecond} records/s` : ''));
  }
  if (s.verify) lines.push(`  verify: ${s.verify.sampled} records compared, ${s.verify.mismatches.length} problems`);
  if (s.backupFile) lines.push(`  backup of the target collections: ${s.backupFile}`);
  lines.push(`  checkpoint: ${s.checkpointFile}`, `  log: ${s.logFile}`);
  for (const w of s.warnings) lines.push(`  warning: ${w}`);
  return lines.join('\n');
}
