/**
 * 2. expected: every old collection read once, in pages, through the migration's transform and its
 * validator; the valid results staged in buckets by id in the run's temp dir; query vectors
 * sampled on the way (or read from --test-queries).
 */
import { bucketCount, RecordBuckets } from '../../../lib/gate/record-buckets.ts';
import type { CollectionInfo } from '../../../lib/migrate/types.ts';
import { RecordValidator } from '../../../lib/migrate/validate.ts';
import type { Step } from '../../../lib/engine/step.ts';
import { done } from '../../../lib/engine/runner.ts';
import type { ValidateCtx, ValidatePlanCtx } from '../context.ts';
import { loadTestQueries } from '../test-queries.ts';

/** What the step reads from the old database, in order: each collection, whole. */
export function oldReads(collections: readonly CollectionInfo[]): { collection: string; records: number }[] {
  return collections.map((x) => ({ collection: x.name, records: x.count }));
}

/** A read of an old collection as `--plan` prints it. */
export function describeOldRead(r: { collection: string; records: number }, old: string): string {
  return `read ${r.collection} (${r.records} records) from ${old} through the transform`;
}

export const expected: Step<ValidateCtx, ValidatePlanCtx> = {
  name: 'expected',
  title: 'expected: the old database through the transform',
  needs: ['connect'],
  undoText: 'none: writes only the run\'s temp staging dir, removed at the end of the run whatever happens',

  async run(c, progress) {
    const validator = new RecordValidator();
    // The target's rules, as migrate applied them: a record it could not store was never expected there.
    const rules = (await c.neu!.targetRules?.()) ?? null;
    // Buckets of about RECORDS_PER_BUCKET old records: the join holds one bucket of each side.
    const buckets = new RecordBuckets(c.staging, 'expected', bucketCount(c.collections.reduce((a, x) => a + x.count, 0)));
    c.expected = buckets;
    let n = 0;
    for (const read of oldReads(c.collections)) {
      const col = c.collections.find((x) => x.name === read.collection)!;
      const every = Math.max(1, Math.floor(col.count / Math.max(1, c.o.queries)));
      let i = 0;
      for await (const page of c.old!.read(col, 500, c.o.signal)) {
        for (const r of page) {
          for (const t of await c.transform!.apply(r, col)) {
            if (validator.check(t.collection, t.record, c.transform!.schemaOf(t.collection), rules).length) continue;
            let entry = c.targets.get(t.collection);
            if (!entry) {
              entry = { tag: c.targets.size, count: 0, from: new Map(), space: c.transform!.targetCollection(t.collection, col).space };
              c.targets.set(t.collection, entry);
            }
            entry.count++;
            entry.from.set(col.name, (entry.from.get(col.name) ?? 0) + 1);
            await buckets.add(entry.tag, t.record);
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
    // An old collection without records is expected as an empty collection (migrate creates it).
    for (const col of c.collections) {
      const name = col.count === 0 ? c.transform!.emptyTarget(col) : null;
      if (name === null || c.targets.has(name)) continue;
      c.targets.set(name, { tag: c.targets.size, count: 0, from: new Map(), space: c.transform!.targetCollection(name, col).space });
    }
    await buckets.finish();
    if (c.o.testQueries) c.queries = await loadTestQueries(c.o.testQueries, c.targets, c.o.topK);
    return done(`${n} old records -> ${buckets.records} expected in ${c.targets.size} collections (${buckets.buckets} buckets)`);
  },

  plan: (p) => ({
    commands: [],
    notes: [
      ...oldReads(p.collections).map((r) => describeOldRead(r, p.old)),
      'stage the valid results in a temp dir, in buckets by id (removed at the end of the run)',
      p.testQueries ? `query vectors: those of ${p.testQueries}, top ${p.topK}` : `query vectors: up to ${p.queries} stored ones per old collection, top ${p.topK}`,
    ],
  }),
};
