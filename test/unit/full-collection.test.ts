/**
 * The full collection long streams ask for (lib/common/full-collection.ts): it frees garbage
 * that V8 would otherwise keep until it decides, and the heap collector asks for it only every
 * `checkEvery` units and only above its limit.
 */
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import { describe, it } from 'node:test';
import { fullCollection, heapGarbageCollector } from '../../lib/common/full-collection.ts';

const used = () => v8.getHeapStatistics().used_heap_size;

describe('full collection', () => {
  it('is exposed here and frees ~40 MB of objects nobody holds', () => {
    const gc = fullCollection();
    assert.ok(gc, 'V8 gc() exposed at runtime');
    gc();
    const before = used();
    let garbage: number[][] | null = Array.from({ length: 40 }, () => Array.from({ length: 128 * 1024 }, (_, i) => i + 0.5));
    assert.ok(used() - before > 30 * 1024 * 1024, 'the garbage is on the heap');
    garbage = null;
    gc();
    assert.equal(garbage, null);
    assert.ok(used() - before < 5 * 1024 * 1024, `freed: ${((used() - before) / 1048576).toFixed(1)} MB left`);
  });

  it('the heap collector looks every checkEvery units and collects only above its limit', () => {
    let calls = 0;
    const counting = () => () => { calls++; };
    const above = heapGarbageCollector(0, 500, counting);
    above(499);
    assert.equal(calls, 0, 'not before 500 units');
    above(1);
    assert.equal(calls, 1);
    above(250);
    above(250);
    assert.equal(calls, 2);
    const below = heapGarbageCollector(Number.MAX_SAFE_INTEGER, 1, counting);
    below(10);
    assert.equal(calls, 2, 'never below the limit');
  });
});
