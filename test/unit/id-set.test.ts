/**
 * The migration's id set (the exact expected count per target, the repeat check of a paged
 * source): the same answers as a Set<string> on ids with repeats, unicode, empty and
 * prefix-sharing ids, lone surrogates (distinct, though UTF-8 writes each as U+FFFD), across its growth; and 80,000 ids kept in well under a megabyte of
 * JavaScript heap, where a Set<string> of the same ids keeps several (measured here too, so
 * the measurement itself is shown able to see the difference).
 */
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, it } from 'node:test';
import { IdSet } from '../../lib/migrate/id-set.ts';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

function heapUsed(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** Fresh id strings (not interned, not shared with anything the caller keeps). */
function ids(n: number, prefix: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(`${prefix}-${String(i).padStart(6, '0')}-${(i * 2654435761) % 1000}`);
  return out;
}

describe('IdSet', () => {
  it('answers like a Set<string>: add tells a repeat, has and size agree, through its growth', () => {
    const s = new IdSet();
    const ref = new Set<string>();
    const odd = ['', 'a', 'ab', 'abc', 'é', 'e\u0301', '✓ collé', '😀', 'a\u0000b', 'a\u0000', 'x'.repeat(5000), '\uD800', '\uD801', '\uDC00', 'a\uD800b', '\uFFFD'];
    let x = 7;
    for (let i = 0; i < 60_000; i++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      // About half repeats: ids drawn from a range smaller than the number of draws.
      const id = i % 97 === 0 ? odd[i % odd.length]! : `r${x % 30_000}`;
      assert.equal(s.add(id), !ref.has(id), `add(${JSON.stringify(id.slice(0, 20))}) at ${i}`);
      ref.add(id);
    }
    assert.equal(s.size, ref.size);
    for (const id of ref) assert.ok(s.has(id), id.slice(0, 20));
    for (const id of ['r30000', 'abcd', 'e', '😀😀', 'a\u0000bc', 'x'.repeat(4999), '\uD802', '\uD800\uDC00']) assert.equal(s.has(id), ref.has(id), id.slice(0, 20));
  });

  it('keeps 80,000 ids in under 1 MB of heap (a Set<string> of them: over 5 MB)', () => {
    const h0 = heapUsed();
    let set: Set<string> | null = new Set(ids(80_000, 'bench'));
    const setBytes = heapUsed() - h0;
    assert.equal(set.size, 80_000);
    set = null;
    const h1 = heapUsed();
    const compact = new IdSet();
    for (const id of ids(80_000, 'bench')) compact.add(id);
    const compactBytes = heapUsed() - h1;
    assert.equal(compact.size, 80_000);
    assert.ok(setBytes > 5 * 1024 * 1024, `the Set<string> control keeps ${setBytes} bytes: the measurement cannot see a Set`);
    assert.ok(compactBytes < 1024 * 1024, `IdSet keeps ${compactBytes} bytes of heap for 80,000 ids`);
  });
});
