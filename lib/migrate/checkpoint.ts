/**
 * The migration checkpoint: which phases are done, the staging dir, the expected counts and,
 * per target collection, how many import batches are done. Written atomically after every batch
 * (temp file + rename), and serialised so parallel workers never interleave writes.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { writeJsonAtomic } from '../engine/atomic-file.ts';
import { UserError } from '../common/errors.ts';
import type { ScopeChoice } from '../chroma/database-scope.ts';
import type { TransformRecord } from './transform-record.ts';

export const MIGRATE_PHASES = ['connect', 'export', 'transform', 'backup', 'import', 'verify', 'cutover'] as const;
export type MigratePhase = (typeof MIGRATE_PHASES)[number];

export interface MigrateCheckpoint {
  version: 1;
  runId: string;
  source: string;
  target: string;
  transform: string;
  /** The transform as the gate needs it (module path and sha256, prefix, renames); absent in older checkpoints. */
  transformRecord?: TransformRecord;
  batchSize: number;
  stagingDir: string;
  phases: Partial<Record<MigratePhase, 'done'>>;
  /** Source collections exported: name -> records. */
  exported: Record<string, number>;
  /** Target collection -> expected records, source collection it is created from, and import progress. */
  /** batchesDone: batches 0..batchesDone-1 are written; doneAbove: later ones written out of order (parallel workers). */
  targets: Record<string, { expected: number; from: string; dimension: number | null; batchesDone: number; doneAbove?: number[]; recordsDone: number }>;
  validation?: { total: number; valid: number; issues: { issue: string; records: number }[] };
  backupFile?: string;
  /** --source-tenant / --source-database as given (absent: not given). */
  sourceScope?: ScopeChoice;
  /** --target-tenant / --target-database as given. */
  targetScope?: ScopeChoice;
  /** --filter-collection, sorted ([]: every collection). */
  filterCollections?: string[];
  /** Imported into staging collections (lib/migrate/staging.ts) and cut over after the gate; false: written in place (a .jsonl target). */
  staged?: boolean;
  updatedAt: string;
}

export const CHECKPOINT_FILE = 'migrate-checkpoint.json';

export class CheckpointStore {
  private chain: Promise<void> = Promise.resolve();
  readonly file: string;

  constructor(readonly dir: string) {
    this.file = path.join(dir, CHECKPOINT_FILE);
  }

  /** The dir exists (created if needed) and is writable: a one-line refusal otherwise. */
  async ensureWritable(): Promise<void> {
    try {
      await fs.mkdir(this.dir, { recursive: true });
      const probe = path.join(this.dir, `.write-test-${process.pid}`);
      await fs.writeFile(probe, '');
      await fs.rm(probe);
    } catch (e) {
      throw new UserError(`--checkpoint-dir ${this.dir} is not writable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); pass a writable directory`);
    }
  }

  async load(): Promise<MigrateCheckpoint | null> {
    try {
      const c = JSON.parse(await fs.readFile(this.file, 'utf8')) as MigrateCheckpoint;
      return c.version === 1 ? c : null;
    } catch {
      return null;
    }
  }

  /** Queue a write of the checkpoint as it is now (writes happen one at a time, in order). */
  save(c: MigrateCheckpoint): Promise<void> {
    const snapshot = JSON.parse(JSON.stringify({ ...c, updatedAt: new Date().toISOString() })) as MigrateCheckpoint;
    this.chain = this.chain.then(() => writeJsonAtomic(this.file, snapshot));
    return this.chain;
  }
}

/** What a run is of: the values `--resume` must be given again (the rest of the checkpoint is progress). */
export interface RunIdentity {
  sourceUrl: string;
  targetUrl: string;
  transform: string;
  sourceScope?: ScopeChoice;
  targetScope?: ScopeChoice;
  filterCollections: string[];
}

/** The identity fields a new checkpoint records (besides source, target and transform). */
export function recordedIdentity(o: RunIdentity): Pick<MigrateCheckpoint, 'sourceScope' | 'targetScope' | 'filterCollections'> {
  return { sourceScope: o.sourceScope, targetScope: o.targetScope, filterCollections: [...new Set(o.filterCollections)].sort() };
}

/**
 * `--resume` of the run in `cp` with other values than it was started with is refused in one
 * line naming each value that changed (before anything is opened or written): its staging
 * collections, counts and journal are of that run's databases and collections.
 */
export function refuseChangedRun(cp: MigrateCheckpoint, o: RunIdentity, dir: string): void {
  const collections = (l: string[] | undefined) => (l?.length ? [...new Set(l)].sort().join(', ') : 'every collection');
  const pairs: [string, string, string][] = [
    ['--source-url', cp.source, o.sourceUrl],
    ['--source-tenant', cp.sourceScope?.tenant ?? 'default_tenant', o.sourceScope?.tenant ?? 'default_tenant'],
    ['--source-database', cp.sourceScope?.database ?? 'default_database', o.sourceScope?.database ?? 'default_database'],
    ['--target-url', cp.target, o.targetUrl],
    ['--target-tenant', cp.targetScope?.tenant ?? 'default_tenant', o.targetScope?.tenant ?? 'default_tenant'],
    ['--target-database', cp.targetScope?.database ?? 'default_database', o.targetScope?.database ?? 'default_database'],
    ['--filter-collection', collections(cp.filterCollections), collections(o.filterCollections)],
    ['--transform', cp.transform, o.transform],
  ];
  const changed = pairs.filter(([, was, now]) => was !== now);
  if (!changed.length) return;
  throw new UserError(
    `--resume: the checkpoint in ${dir} is of another run (${changed.map(([flag, was, now]) => `${flag} was ${was}, now ${now}`).join('; ')}); ` +
      'pass the same values to continue it, or start a new run with another --checkpoint-dir (without --resume)',
  );
}
