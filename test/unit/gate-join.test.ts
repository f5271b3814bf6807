/**
 * The gate's join without servers: records spilled to buckets come back exactly (floats, nulls,
 * unicode); the join pairs each new record with its expected one whatever the order and the
 * number of buckets, and tallies each kind of difference with its first ids (smallest first);
 * 0.99 and "0.99" differ, a null value is an absent key.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GateChecker } from '../../lib/gate/checks.ts';
import { DocumentCopies } from '../../lib/gate/document-copies.ts';
import { bucketCount, MAX_BUCKETS, RecordBuckets } from '../../lib/gate/record-buckets.ts';
import { contentDifferences } from '../../lib/gate/record-diff.ts';
import { joinRecords } from '../../lib/gate/record-join.ts';
import type { MigrationRecord } from '../../lib/migrate/types.ts';

const rec = (id: string, o: Partial<MigrationRecord> = {}): MigrationRecord => ({
  id, embedding: [0.1 * id.length, -1 / 3, 1e-300], document: `doc ${id}`, metadata: { score: 0.5, source: 'talk', n: 1 }, ...o,
});

describe('gate join', () => {
  let dir: string;
  before(async () => { dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-gate-join-')); });
  after(async () => { await fs.rm(dir, { recursive: true, force: true }); });

  it('buckets give back every record exactly, one bucket at a time', async () => {
    const b = new RecordBuckets(await fs.mkdtemp(path.join(dir, 'rt-')), 'x', 3);
    const recs = [rec('a'), rec('é✓', { embedding: null, document: null, metadata: null }), rec('c', { embedding: [Math.PI, -0, 5e-324] })];
    for (const r of recs) await b.add(7, r);
    await b.finish();
    const perBucket = await Promise.all([0, 1, 2].map((i) => b.read(i)));
    assert.equal(perBucket.flat().length, 3);
    for (const r of recs) {
      const got = perBucket[b.bucketOf(r.id)]!.find((x) => x.id === r.id)!;
      assert.ok(got, `${r.id} is in bucket ${b.bucketOf(r.id)}`);
      assert.deepEqual({ ...got, embedding: got.embedding && Array.from(got.embedding) }, { tag: 7, ...r });
    }
  });

  it('bucket count: about 2,000 records per bucket, at most MAX_BUCKETS', () => {
    assert.equal(bucketCount(0), 1);
    assert.equal(bucketCount(10_000), 5);
    assert.equal(bucketCount(10_000_000), MAX_BUCKETS);
  });

  it('content differences: types apart, null as absent, keys in order', () => {
    const want = rec('a', { metadata: { score: 0.99, gone: 'x', same: null } });
    assert.deepEqual(contentDifferences(want, { ...want, metadata: { score: '0.99', added: true } }).map((d) => d.kind),
      ['metadata_key_removed', 'metadata_type_changed', 'metadata_key_added']);
    assert.deepEqual(contentDifferences(want, { ...want, metadata: { score: 0.99, gone: 'x' } }), []);
    assert.deepEqual(contentDifferences(want, { ...want, metadata: { score: 1, gone: 'x' } }).map((d) => d.kind), ['metadata_value_changed']);
    assert.deepEqual(contentDifferences(rec('b', { metadata: { n: 1 } }), rec('b', { metadata: { n: true } })).map((d) => d.kind), ['metadata_type_changed']);
  });

  for (const buckets of [1, 4, 13]) {
    it(`the join pairs records by collection and id (${buckets} buckets) and counts each kind`, async () => {
      const d = await fs.mkdtemp(path.join(dir, 'join-'));
      const expected = new RecordBuckets(d, 'expected', buckets);
      const actual = new RecordBuckets(d, 'actual', buckets);
      const ids = Array.from({ length: 50 }, (_, i) => `r${String(i).padStart(3, '0')}`);
      for (const id of ids) await expected.add(0, rec(id));
      await expected.add(1, rec('r000')); // the same id in another collection: its own record
      // The new database, in another order: r010 and r011 missing, x1 extra, five records changed.
      for (const id of [...ids].reverse()) {
        if (id === 'r010' || id === 'r011') continue;
        const r = rec(id);
        if (id === 'r020') r.document = 'tampered';
        if (id === 'r030' || id === 'r031') r.metadata = { ...r.metadata, source: 'talk_TAMPERED' };
        if (id === 'r040') r.metadata = { ...r.metadata, score: '0.5' };
        if (id === 'r041') r.embedding = r.embedding!.map((v) => -v);
        await actual.add(0, r);
      }
      await actual.add(0, rec('x1'));
      await actual.add(1, rec('r000'));
      await expected.finish();
      await actual.finish();
      const gate = new GateChecker(undefined);
      gate.addTarget({ name: 'a', tag: 0, space: 'l2', queries: [], staged: 50, schema: null });
      gate.addTarget({ name: 'b', tag: 1, space: 'l2', queries: [], staged: 1, schema: null });
      await joinRecords(expected, actual, gate, new DocumentCopies(d, buckets));
      const diff = gate.differences.report();
      assert.deepEqual(diff.missing, { records: 2, first_ids: ['a/r010', 'a/r011'] });
      assert.deepEqual(diff.extra, { records: 1, first_ids: ['a/x1'] });
      assert.deepEqual(diff.document_changed, { records: 1, first_ids: ['a/r020'] });
      assert.deepEqual(diff.metadata_value_changed, { records: 2, first_ids: ['a/r030', 'a/r031'] });
      assert.deepEqual(diff.metadata_type_changed, { records: 1, first_ids: ['a/r040'] });
      assert.deepEqual(diff.embedding_changed, { records: 1, first_ids: ['a/r041'] });
      const results = gate.results();
      const eq = results.find((c) => c.name === 'record_equality')!;
      assert.equal(eq.status, 'FAILED');
      assert.equal(eq.figures.compared, 49);
      assert.equal(eq.figures.records_changed, 4);
      const dup = results.find((c) => c.name === 'duplicate_detection')!;
      assert.equal(dup.figures.duplicate_ids_across_collections, 1, 'r000 is in a and in b');
      assert.deepEqual(Object.fromEntries(gate.counts), {
        a: { expected: 50, actual: 49, missing: 2, extra: 1 }, b: { expected: 1, actual: 1, missing: 0, extra: 0 },
      });
    });
  }

  it('first ids: the five smallest, whatever the order they come in', async () => {
    const gate = new GateChecker(undefined);
    for (const id of ['k', 'c', 'z', 'a', 'm', 'b', 'y']) gate.differences.add('extra', 'col', id);
    assert.deepEqual(gate.differences.report().extra, { records: 7, first_ids: ['col/a', 'col/b', 'col/c', 'col/k', 'col/m'] });
  });
});
