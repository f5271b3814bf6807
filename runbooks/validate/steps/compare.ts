/**
 * 3. compare: each target collection of the new database read once, in pages, into buckets by id
 * beside the expected records'; then the two sides joined bucket by bucket (lib/gate/record-join.ts):
 * every record's document, metadata and embedding against its expected record, and the exact top-k
 * of the same query vectors over both (all the checks). Memory: a page, then one bucket of each side.
 */
import { CHECK_NAMES } from '../../../lib/gate/checks.ts';
import { DocumentCopies } from '../../../lib/gate/document-copies.ts';
import { RecordBuckets } from '../../../lib/gate/record-buckets.ts';
import { joinRecords } from '../../../lib/gate/record-join.ts';
import type { Step } from '../../../lib/engine/step.ts';
import { done } from '../../../lib/engine/runner.ts';
import type { ValidateCtx, ValidatePlanCtx } from '../context.ts';

export const compare: Step<ValidateCtx, ValidatePlanCtx> = {
  name: 'compare',
  title: 'compare: every expected record with the new database',
  needs: ['connect', 'expected'],
  undoText: 'none: reads only',

  async run(c, progress) {
    const expected = c.expected!;
    const actual = new RecordBuckets(c.staging, 'actual', expected.buckets);
    const existing = await c.neu!.listCollections();
    for (const [name, t] of c.targets) {
      c.gate.addTarget({ name, tag: t.tag, space: t.space, staged: t.count, schema: c.transform!.schemaOf(name), queries: c.queries.filter((q) => q.target === name) });
      const info = existing.find((x) => x.name === name);
      if (!info) {
        c.gate.collectionAbsent(name);
        continue;
      }
      for await (const page of c.neu!.read(info, 500, c.o.signal)) {
        for (const r of page) await actual.add(t.tag, r);
        progress(`${name}: ${actual.records} records read`);
      }
    }
    await actual.finish();
    progress(`joining ${expected.records} expected and ${actual.records} records in ${expected.buckets} buckets`);
    await joinRecords(expected, actual, c.gate, new DocumentCopies(c.staging, expected.buckets), c.o.signal);
    return done(`${c.targets.size} collections compared (${expected.buckets} buckets)`);
  },

  plan: (p) => ({
    commands: [],
    notes: [
      `read from ${p.new} each collection the transform writes, once, and compare every record with its expected record (document, each metadata value, embedding): ${CHECK_NAMES.join(', ')}`,
      p.sample ? `embeddings of ${p.sample} records per collection compared` : 'embeddings of every record compared',
    ],
  }),
};
