/**
 * What the restore's steps work on: the options, the report, the backup and the target
 * (`RestoreCtx`), and what `restore --plan` knows from a read-only look at both (`RestorePlanCtx`).
 *
 * Both are `RestoreFacts`: the backup's collections and the names the migration touched. The
 * writes of a restore are built from those facts and what is on the target by one function per
 * step (`removals`, `recreation`), which the step's `run` carries out and its `plan` prints.
 */
import type { ScopeChoice } from '../../lib/chroma/database-scope.ts';
import type { Endpoint } from '../../lib/migrate/endpoints.ts';
import type { JsonlEndpoint } from '../../lib/migrate/jsonl-endpoint.ts';
import type { CollectionInfo } from '../../lib/migrate/types.ts';
import type { OutputMode } from '../../lib/report/output.ts';
import type { StepReport } from '../../lib/engine/runner.ts';
import type { AnyStep } from '../../lib/engine/step.ts';

export interface RestoreOptions {
  backup: string;
  targetUrl: string;
  /** --target-tenant / --target-database (a Chroma server or persist dir); a missing one is refused before any write. */
  targetScope?: ScopeChoice;
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

/** What the backup holds: its collections (with counts) and the collections the migration was about to write. */
export interface RestoreFacts {
  collections: CollectionInfo[];
  /** The header's `touched`, else every collection of the backup. */
  touched: string[];
}

export interface RestoreCtx extends RestoreFacts {
  o: RestoreOptions;
  report: RestoreReport;
  backup: JsonlEndpoint;
  target?: Endpoint;
}

/** What `restore --plan` knows from a read-only look at the backup and the target. */
export interface RestorePlanCtx extends RestoreFacts {
  backup: string;
  target: string;
  /** Collections the restore touches (the backup's and the ones the migration created) that are on the target now. */
  onTarget: ReadonlySet<string>;
  batchSize: number;
  sample: number;
}

export type RestoreStepObject = AnyStep<RestoreCtx, RestorePlanCtx>;

/** One write of a restore, in the order it is made. */
export type RestoreWrite =
  | { op: 'remove'; collection: string }
  | { op: 'drop'; collection: string }
  | { op: 'create'; collection: string }
  | { op: 'upsert'; collection: string; records: number; batchSize: number };

/** A write as `--plan` prints it. */
export function describeWrite(w: RestoreWrite, target: string): string {
  switch (w.op) {
    case 'remove': return `delete collection ${w.collection} on ${target} (created by the migration: touched, and not in the backup)`;
    case 'drop': return `drop collection ${w.collection} on ${target} (re-created from the backup next)`;
    case 'create': return `create collection ${w.collection} on ${target} with the backup's distance, HNSW settings and metadata`;
    case 'upsert': return `upsert the backup's ${w.records} records of ${w.collection} in batches of up to ${w.batchSize}`;
  }
}

/** Collections the migration created: listed as touched, absent from the backup. */
export function createdByMigration(f: RestoreFacts): string[] {
  const inBackup = new Set(f.collections.map((x) => x.name));
  return f.touched.filter((n) => !inBackup.has(n));
}

/** The remove step's writes: the collections the migration created that are on the target. */
export function removals(f: RestoreFacts, onTarget: ReadonlySet<string>): RestoreWrite[] {
  return createdByMigration(f).filter((n) => onTarget.has(n)).map((collection) => ({ op: 'remove', collection }));
}

/** The recreate step's writes: every backed-up collection dropped (when there), created, filled (unless empty). */
export function recreation(f: RestoreFacts, onTarget: ReadonlySet<string>, batchSize: number): RestoreWrite[] {
  return f.collections.flatMap((col): RestoreWrite[] => [
    ...(onTarget.has(col.name) ? [{ op: 'drop' as const, collection: col.name }] : []),
    { op: 'create', collection: col.name },
    ...(col.count > 0 ? [{ op: 'upsert' as const, collection: col.name, records: col.count, batchSize }] : []),
  ]);
}

/** Records per write: the target's max, at most 1000. */
export function restoreBatchSize(targetMax: number): number {
  return Math.max(1, Math.min(targetMax, 1000));
}

export function recordsIn(cols: readonly CollectionInfo[]): number {
  return cols.reduce((n, x) => n + x.count, 0);
}
