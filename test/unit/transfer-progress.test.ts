import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TransferProgress, transferLine } from '../../lib/report/transfer-progress.ts';

const MiB = 1024 * 1024;

describe('transfer progress', () => {
  it('a line carries bytes, share, MB/s and ETA', () => {
    assert.equal(transferLine({ doneBytes: 25 * MiB, sentBytes: 20 * MiB, totalBytes: 100 * MiB, elapsedMs: 4000 }),
      '25.0 MiB / 100.0 MiB (25%), 5.2 MB/s, ETA 15 s');
    assert.match(transferLine({ doneBytes: 0, sentBytes: 0, totalBytes: MiB, elapsedMs: 0 }), /0\.0 MB\/s, ETA --$/);
    assert.match(transferLine({ doneBytes: 0, sentBytes: 1e6, totalBytes: 1000 * MiB, elapsedMs: 1000 }), /ETA 17 min 29 s$/);
  });

  it('plain output: the first reading, then one line per tenth crossed, never more than 11', () => {
    const p = new TransferProgress();
    const shown: string[] = [];
    // 1,000 readings of 0.1% each (a chunk every 0.1%): a line per reading would be spam.
    for (let i = 0; i <= 1000; i++) {
      const l = p.plainLine({ doneBytes: i * 100_000, sentBytes: i * 100_000, totalBytes: 100_000_000, elapsedMs: 1 + i * 10 });
      if (l) shown.push(l);
    }
    assert.equal(shown.length, 11);
    assert.deepEqual(shown.map((l) => Number(/\((\d+)%\)/.exec(l)![1])), [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    // Coarse chunks skip tenths: one line per reading that reaches a new tenth, none repeated.
    const q = new TransferProgress();
    const coarse = [0, 35, 36, 80, 100].map((pc) => q.plainLine({ doneBytes: pc, sentBytes: pc, totalBytes: 100, elapsedMs: 10 }));
    assert.deepEqual(coarse.map((l) => (l ? Number(/\((\d+)%\)/.exec(l)![1]) : null)), [0, 35, null, 80, 100]);
  });
});
