/**
 * The server limits applied to a Chroma endpoint (lib/migrate/chroma-cloud.ts): Chroma Cloud's
 * published 300/300/10, the reported max batch elsewhere, writes split and queued per collection.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CLOUD_LIMITS, isChromaCloud, limitsFor, withServerLimits } from '../../lib/migrate/chroma-cloud.ts';
import type { MigrationRecord } from '../../lib/migrate/types.ts';
import { RecordingSink } from '../helpers/recording-endpoint.ts';

const rec = (i: number): MigrationRecord => ({ id: `r${i}`, embedding: [i, 1], document: null, metadata: null });

describe('Chroma server limits', () => {
  it('Cloud (api.trychroma.com): 300 per write and per read whatever the server reports; elsewhere the reported max batch', () => {
    assert.equal(isChromaCloud('https://api.trychroma.com'), true);
    assert.equal(isChromaCloud('http://127.0.0.1:8000'), false);
    assert.deepEqual(limitsFor('https://api.trychroma.com', 1000), CLOUD_LIMITS);
    assert.deepEqual(limitsFor('https://api.trychroma.com', 100), { recordsPerWrite: 100, recordsPerRead: 100, concurrentWritesPerCollection: 10 });
    assert.deepEqual(limitsFor('http://127.0.0.1:8000', 5461), { recordsPerWrite: 5461, recordsPerRead: 5461, concurrentWritesPerCollection: 10 });
    assert.equal(limitsFor('http://127.0.0.1:8000', -1).recordsPerWrite, 300, 'no max reported: Cloud\'s write limit');
  });

  it('a write above the limit is split, a get of more ids is split, reads are paged at the limit', async () => {
    const sink = new RecordingSink({ maxBatch: 5000 });
    sink.seed({ name: 'c', metadata: null, space: 'l2', dimension: 2 }, Array.from({ length: 700 }, (_, i) => rec(i)));
    const e = withServerLimits(sink, { recordsPerWrite: 300, recordsPerRead: 300, concurrentWritesPerCollection: 10 });
    assert.equal(await e.maxBatchSize(), 300);
    await e.upsert('c', Array.from({ length: 650 }, (_, i) => rec(1000 + i)));
    assert.deepEqual(sink.writes.map((w) => (w.op === 'upsert' ? w.records : 0)), [300, 300, 50]);
    const pages: number[] = [];
    for await (const p of e.read({ name: 'c', metadata: null, space: 'l2', count: 1350, dimension: 2 }, 1000)) pages.push(p.length);
    assert.deepEqual(pages, [300, 300, 300, 300, 150]);
    assert.equal((await e.get('c', Array.from({ length: 700 }, (_, i) => `r${i}`))).length, 700);
    assert.equal(e.label, sink.label);
  });

  it('at most 10 writes in flight per collection: the 11th starts when one ends; other collections are not held', async () => {
    const held: { collection: string; release: () => void }[] = [];
    const sink = new RecordingSink({ maxBatch: 5000 });
    const inner = Object.assign(Object.create(sink) as RecordingSink, {
      upsert: (collection: string) => new Promise<void>((resolve) => { held.push({ collection, release: resolve }); }),
    });
    const e = withServerLimits(inner, { recordsPerWrite: 300, recordsPerRead: 300, concurrentWritesPerCollection: 10 });
    const writes = Array.from({ length: 12 }, (_, i) => e.upsert('a', [rec(i)]));
    const other = e.upsert('b', [rec(99)]);
    await new Promise((r) => setImmediate(r));
    assert.equal(held.filter((h) => h.collection === 'a').length, 10);
    assert.equal(held.filter((h) => h.collection === 'b').length, 1);
    held[0]!.release();
    await writes[0];
    await new Promise((r) => setImmediate(r));
    assert.equal(held.filter((h) => h.collection === 'a').length, 11);
    for (const h of held) h.release();
    await new Promise((r) => setImmediate(r));
    for (const h of held.slice(11)) h.release();
    await Promise.all([...writes, other]);
    assert.equal(held.length, 13);
  });
});
