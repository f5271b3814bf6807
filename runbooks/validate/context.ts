/**
 * What the gate's steps work on: the options, the migration's record, the two databases, the
 * staging dir of both sides' record buckets and the checker (`ValidateCtx`), and what `validate --plan`
 * knows from a read-only look at both databases (`ValidatePlanCtx`).
 */
import path from 'node:path';
import { UserError } from '../../lib/common/errors.ts';
import type { ScopeChoice } from '../../lib/chroma/database-scope.ts';
import type { GateChecker } from '../../lib/gate/checks.ts';
import type { GateMigration } from '../../lib/gate/recorded-migration.ts';
import type { RecordBuckets } from '../../lib/gate/record-buckets.ts';
import type { Endpoint } from '../../lib/migrate/endpoints.ts';
import type { Transform } from '../../lib/migrate/transform.ts';
import type { CollectionInfo, DistanceSpace } from '../../lib/migrate/types.ts';
import type { OutputMode } from '../../lib/report/output.ts';
import type { AnyStep } from '../../lib/engine/step.ts';
import type { GateReport } from './report.ts';

export interface ValidateOptions {
  oldUrl: string;
  newUrl: string;
  /** --source-tenant / --source-database: the old database's tenant and database (Chroma). */
  oldScope?: ScopeChoice;
  /** --target-tenant / --target-database: the new database's (Chroma); the rollback restores into it. */
  newScope?: ScopeChoice;
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

export interface QueryCase {
  label: string;
  source: string;
  target: string;
  embedding: number[];
  k: number;
  where?: Record<string, unknown>;
}

/** An expected target collection: its tag in the record buckets, records staged, how many came from each old collection, its space. */
export interface ExpectedTarget {
  tag: number;
  count: number;
  from: Map<string, number>;
  space: DistanceSpace;
}

export interface ValidateCtx {
  o: ValidateOptions;
  m: GateMigration;
  old?: Endpoint;
  neu?: Endpoint;
  transform?: Transform;
  collections: CollectionInfo[];
  /** A temp dir of this run (removed at its end whatever happens): both sides' record buckets. */
  staging: string;
  /** The expected records, bucketed by id (the expected step writes them). */
  expected?: RecordBuckets;
  targets: Map<string, ExpectedTarget>;
  queries: QueryCase[];
  gate: GateChecker;
  report: GateReport;
}

/** What `validate --plan` knows from a read-only look at both databases and the migration's record. */
export interface ValidatePlanCtx {
  old: string;
  new: string;
  /** The transform as the report names it (with where it came from). */
  transform: string;
  collections: CollectionInfo[];
  queries: number;
  testQueries?: string;
  topK: number;
  sample?: number;
}

export type ValidateStepObject = AnyStep<ValidateCtx, ValidatePlanCtx>;

/** migrate's flag in an endpoint's refusal, as the gate's flag. */
export function relabel(e: unknown, from: string, to: string): unknown {
  if (e instanceof UserError) return new UserError(e.message.replaceAll(from, to));
  return e;
}

/** The Markdown report and the JSON report beside it. */
export function reportFiles(output: string): { markdown: string; json: string } {
  const markdown = path.resolve(output);
  return { markdown, json: markdown.replace(/\.md$/i, '') + '.json' };
}
