/**
 * `migrate --plan`: the phases of a migration and what each would do on these endpoints, from a
 * read-only look at them (collections, counts, distance spaces, the target's max batch size):
 * each phase's own `plan()`. Nothing is written: no checkpoint, no staging file, nothing on the target.
 */
import path from 'node:path';
import type { ScopeChoice } from '../../lib/chroma/database-scope.ts';
import { CHECKPOINT_FILE } from '../../lib/migrate/checkpoint.ts';
import { openSource, openTarget } from '../../lib/migrate/endpoints.ts';
import { canStage } from '../../lib/migrate/staging.ts';
import { loadTransform } from '../../lib/migrate/transform.ts';
import type { MigratePlanCtx } from './context.ts';
import { MIGRATE_STEP_OBJECTS } from './index.ts';

export interface MigratePlan {
  runbook: 'migrate';
  source: string;
  target: string;
  transform: string;
  batchSize: number;
  targetMaxBatchSize: number;
  checkpointFile: string;
  /** Export, transform, validation and import run at once (a target that stages: Chroma, Qdrant). */
  overlapped: boolean;
  collections: { name: string; records: number; space: string; existsOnTarget: boolean }[];
  steps: { name: string; does: string }[];
}

export async function planMigrate(o: {
  sourceUrl: string; targetUrl: string; transform: string; prefix?: string; filterCollections: string[]; batchSize?: number; checkpointDir: string;
  sourceScope?: ScopeChoice; targetScope?: ScopeChoice; createDatabase?: boolean;
}): Promise<MigratePlan> {
  const source = await openSource(o.sourceUrl, { scope: o.sourceScope });
  const { endpoint: target } = await openTarget(o.targetUrl, { resume: false, dryRun: true, scope: o.targetScope, createDatabase: o.createDatabase }).catch(async (e) => {
    await source.close();
    throw e;
  });
  try {
    await loadTransform(o.transform, { prefix: o.prefix });
    const cols = await source.listCollections(o.filterCollections);
    const max = await target.maxBatchSize();
    const existing = await target.existing(cols.map((c) => c.name));
    const p: MigratePlanCtx = {
      source: source.label, target: target.label, transform: o.transform, checkpointDir: path.resolve(o.checkpointDir), collections: cols,
      records: cols.reduce((n, c) => n + c.count, 0), batchSize: Math.min(o.batchSize ?? max, max), targetMaxBatchSize: max,
    };
    return {
      runbook: 'migrate', source: source.label, target: target.label, transform: o.transform, batchSize: p.batchSize, targetMaxBatchSize: max,
      checkpointFile: path.join(p.checkpointDir, CHECKPOINT_FILE), overlapped: canStage(target),
      collections: cols.map((c) => ({ name: c.name, records: c.count, space: c.space, existsOnTarget: existing.has(c.name) })),
      steps: MIGRATE_STEP_OBJECTS.map((s) => ({ name: s.name, does: s.plan(p).notes.join(' ') })),
    };
  } finally {
    await source.close();
    await target.close();
  }
}

export function formatMigratePlan(p: MigratePlan): string {
  const lines = [`migrate plan: ${p.source} -> ${p.target} (transform ${p.transform}); nothing has been done`];
  if (p.overlapped) lines.push('  export, transform (with validation) and import run overlapped: records stream from the source into the staging collections');
  p.steps.forEach((s, i) => lines.push(`  ${i + 1}. ${s.name}: ${s.does}`));
  lines.push('  collections:');
  for (const c of p.collections) lines.push(`    ${c.name}: ${c.records} records, ${c.space}${c.existsOnTarget ? ' (exists on the target: it is backed up, then upserted into)' : ''}`);
  return lines.join('\n');
}
