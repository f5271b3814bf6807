/** The upload's lanes from a measured chunk (lib/transfer/upload-lanes.ts). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { lanesFor } from '../../lib/transfer/upload-lanes.ts';

describe('chunks in flight from the measured upload', () => {
  test('a slow link (a chunk takes seconds, its check a fraction): 2 lanes, the chunks arrive in order', () => {
    // Measured on the 50 Mbit/s bench link: a 10 MiB chunk in ~5.1 s while 3 shared it, checked in 0.1-0.4 s.
    assert.equal(lanesFor({ uploadMs: 5100, sharing: 3, overheadMs: 400 }, 3), 2);
    assert.equal(lanesFor({ uploadMs: 1700, sharing: 1, overheadMs: 100 }, 8), 2);
  });

  test('a fast link (the check costs as much as the bytes): more lanes, up to --upload-concurrency', () => {
    assert.equal(lanesFor({ uploadMs: 300, sharing: 3, overheadMs: 150 }, 3), 3, '1 + ceil(150 / 100) = 3');
    assert.equal(lanesFor({ uploadMs: 300, sharing: 3, overheadMs: 150 }, 8), 3);
    assert.equal(lanesFor({ uploadMs: 100, sharing: 2, overheadMs: 400 }, 4), 4, 'capped at the flag');
    assert.equal(lanesFor({ uploadMs: 100, sharing: 2, overheadMs: 400 }, 16), 9);
  });

  test('never fewer than 2 (a put\'s end drains the pipe), nor more than allowed; --upload-concurrency 1 stays 1', () => {
    assert.equal(lanesFor({ uploadMs: 10_000, sharing: 1, overheadMs: 0 }, 3), 2);
    assert.equal(lanesFor({ uploadMs: 10_000, sharing: 1, overheadMs: 0 }, 1), 1);
    assert.equal(lanesFor({ uploadMs: 50, sharing: 1, overheadMs: 5000 }, 1), 1);
  });

  test('nothing measured (a zero-length upload): the flag as given', () => {
    assert.equal(lanesFor({ uploadMs: 0, sharing: 1, overheadMs: 10 }, 3), 3);
    assert.equal(lanesFor({ uploadMs: 100, sharing: 0, overheadMs: Number.NaN }, 3), 3);
  });
});
