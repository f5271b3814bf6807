/**
 * What the migration's phases work on: the options, the summary, the checkpoint and the two
 * endpoints (`MigrateCtx`), and what `--plan` knows from a read-only look at both ends
 * (`MigratePlanCtx`). Small helpers the phases share (staging file names, page sizes, rates).
 */
import crypto from 'node:crypto';
import path from 'node:path';
import type { UndoOutcome } from '../../lib/engine/compensation.ts';
import type { CheckpointStore, MigrateCheckpoint, MigratePhase } from '../../lib/migrate/checkpoint.ts';
import type { ScopeChoice } from '../../lib/chroma/database-scope.ts';
import type { Endpoint } from '../../lib/migrate/endpoints.ts';
import { canStage, stagingName } from '../../lib/migrate/staging.ts';
import type { TargetRules } from '../../lib/migrate/target-rules.ts';
import type { QdrantOptions } from '../../lib/migrate/qdrant-endpoint.ts';
import type { JsonlLog } from '../../lib/migrate/log.ts';
import type { Transform } from '../../lib/migrate/transform.ts';
import type { CollectionInfo } from '../../lib/migrate/types.ts';
import type { OutputMode } from '../../lib/report/output.ts';
import { done, type StepOutcome, type StepReport } from '../../lib/engine/runner.ts';
import type { AnyStep } from '../../lib/engine/step.ts';

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
  /** `--source-tenant` / `--source-database` (exact names; one not given: from the server). */
  sourceScope?: ScopeChoice;
  /** `--target-tenant` / `--target-database`. */
  targetScope?: ScopeChoice;
  /** `--create-database`: a missing target tenant or database is created before the first write. */
  createDatabase?: boolean;
  /** `--qdrant-shards`, `--qdrant-replication`, `--qdrant-ordering`. */
  qdrant?: QdrantOptions;
  /** `--keep-previous N`: cut-over runs whose previous versions are kept (default 1). */
  keepPrevious?: number;
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
  validation?: { total: number; valid: number; validShare: number; issues: { issue: string; records: number; ids?: string[] }[] };
  import: { batchesSent: number; batchesSkipped: number; recordsSent: number; retries: number; recordsPerSecond?: number };
  verify?: { sampled: number; mismatches: string[] };
  /** Staged import: the staging collections, what the cutover set aside, what retention dropped; or dropped after a failed gate. */
  cutover?: { staging: string[]; previous: string[]; dropped: string[]; journal: string };
  checkpointFile: string;
  /** The persist dir this run created as the target (absolute), when --target-url named a new one. */
  createdDir?: string;
  /** What --create-database created on the target (e.g. "database prod in tenant acme"). */
  createdDatabase?: string;
  backupFile?: string;
  logFile: string;
  warnings: string[];
  error?: string;
  rollback: UndoOutcome[];
}

export interface MigrateCtx {
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
  /** The target's rules (names, metadata), read once by the transform step. */
  rules?: TargetRules | null;
  /**
   * Overlapped run (`streams`): the target collections known before the first record (the `none`
   * transform's names, empty collections), checked before any write and backed up.
   */
  planned?: Map<string, { from: string; dimension: number | null; empty: boolean }>;
  /** A refusal after the staging collections were dropped: the target is exactly as before (exit 2). */
  liveUntouched?: boolean;
}

/**
 * Export, transform, validation and import overlapped (runbooks/migrate/stream.ts): a target that
 * stages (its live collections untouched until the cutover), not a dry run, and not a run whose
 * transform phase was finished stage by stage before (a --resume of such a run imports its staged files).
 */
export function streams(c: MigrateCtx): boolean {
  return !c.o.dryRun && canStage(c.target) && !c.cp.phases.transform;
}

/** What `migrate --plan` knows from a read-only look at both ends. */
export interface MigratePlanCtx {
  source: string;
  target: string;
  transform: string;
  /** The checkpoint dir, absolute. */
  checkpointDir: string;
  collections: CollectionInfo[];
  records: number;
  batchSize: number;
  targetMaxBatchSize: number;
}

export type MigrateStepObject = AnyStep<MigrateCtx, MigratePlanCtx>;


/**
 * Bytes of records in one page or batch, roughly (the JSON of the embeddings dominates). Small
 * enough that the peak memory stays flat as the dataset grows (V8 grows its heap with the size
 * of what is live at a collection, so big batches ratchet it up), large enough that the target's
 * ingest rate is not lowered (measured: 614-record batches of 768-d ingest as fast as 5,461).
 */
export const MEMORY_BUDGET_BYTES = 12 * 1024 * 1024;

/** A phase the interrupted run finished (`--resume`): its results back in the summary. */
export function restoredNote(c: MigrateCtx, phase: MigratePhase): StepOutcome {
  fillTargets(c);
  if (phase === 'export') c.summary.collections = c.collections.map((s) => ({ source: s.name, exported: c.cp.exported[s.name] ?? 0 }));
  if ((phase === 'transform' || phase === 'import') && c.cp.validation && !c.summary.validation) c.summary.validation = { ...c.cp.validation, validShare: c.cp.validation.total ? c.cp.validation.valid / c.cp.validation.total : 1 };
  if (phase === 'backup') c.summary.backupFile = c.cp.backupFile;
  return done(`done by the interrupted run ${c.cp.runId}`);
}

export function fillTargets(c: MigrateCtx): void {
  c.summary.targets = Object.entries(c.cp.targets).map(([name, t]) => ({
    name, from: t.from, expected: t.expected, existedBefore: c.existedBefore.has(name),
  }));
}

export function sourceOf(c: MigrateCtx, target: string): CollectionInfo {
  const from = c.cp.targets[target]?.from ?? c.planned?.get(target)?.from;
  return c.collections.find((s) => s.name === from) ?? c.collections[0]!;
}

/** Where target collection `name` is written: its staging collection when the run stages (lib/migrate/staging.ts). */
export function writeName(c: MigrateCtx, name: string): string {
  return c.cp.staged ? stagingName(name, c.cp.runId) : name;
}

export function exportFile(cp: MigrateCheckpoint, collection: string): string {
  return path.join(cp.stagingDir, 'export', `${safeName(collection)}.jsonl`);
}

/** Overlapped run: the records of target `collection` verify compares (every k-th, written at the end of the stream). */
export function sampleFile(cp: MigrateCheckpoint, collection: string): string {
  return path.join(cp.stagingDir, 'sample', `${safeName(collection)}.jsonl`);
}

export function stagedFile(cp: MigrateCheckpoint, collection: string): string {
  return path.join(cp.stagingDir, 'staged', `${safeName(collection)}.jsonl`);
}

function safeName(name: string): string {
  return `${name.replace(/[^A-Za-z0-9._-]/g, '_')}-${crypto.createHash('sha256').update(name).digest('hex').slice(0, 8)}`;
}

export function pageSizeFor(c: MigrateCtx, col: CollectionInfo): number {
  return Math.max(1, Math.min(c.o.batchSize ?? 1000, memoryCap(col.dimension ?? 1536), 1000));
}

export function memoryCap(dimension: number): number {
  return Math.max(1, Math.floor(MEMORY_BUDGET_BYTES / (dimension * 24 + 2048)));
}

export function rateMeter(): ((done: number) => string) & { perSecond: (done: number) => number } {
  const t0 = performance.now();
  const perSecond = (done: number) => done / Math.max(0.001, (performance.now() - t0) / 1000);
  return Object.assign((done: number) => `${Math.round(perSecond(done))} records/s`, { perSecond });
}

export function etaOf(rate: ReturnType<typeof rateMeter>, done: number, total: number): string {
  const r = rate.perSecond(done);
  return r > 0 && done < total ? `, ETA ${Math.ceil((total - done) / r)} s` : '';
}

export function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}
