import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { estimatedArchiveBytes, TransferDisplay, TransferProgress, transferLine } from '../../lib/report/transfer-progress.ts';

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

  it('an estimated total (still packing) says ~ and stays under 100% and under the last tenth', () => {
    assert.equal(transferLine({ doneBytes: 10 * MiB, sentBytes: 10 * MiB, totalBytes: 10 * MiB, totalEstimated: true, elapsedMs: 2000 }),
      '10.0 MiB / ~10.0 MiB (99%), 5.2 MB/s, ETA 0 s');
    const p = new TransferProgress();
    assert.match(p.plainLine({ doneBytes: 10, sentBytes: 10, totalBytes: 10, totalEstimated: true, elapsedMs: 1 })!, /\(99%\)/);
    // The exact total then brings the 100% line (the estimated 99% was tenth 9, not 10).
    assert.match(p.plainLine({ doneBytes: 12, sentBytes: 12, totalBytes: 12, elapsedMs: 1 })!, /\(100%\), .*ETA 0 s$/);
  });

  it('the estimate: bytes written scaled to the whole input, never below what is written', () => {
    assert.equal(estimatedArchiveBytes(0, 0, 40 * MiB), 40 * MiB);
    assert.equal(estimatedArchiveBytes(5 * MiB, 10 * MiB, 40 * MiB), 20 * MiB);
    assert.equal(estimatedArchiveBytes(5 * MiB, 40 * MiB, 40 * MiB), 5 * MiB);
  });

  it('one display handed from step to step: plain lines by tenth over the whole transfer, none repeated after the hand-over', () => {
    let done = 0;
    const display = new TransferDisplay('plain', () => ({ doneBytes: done, sentBytes: done, elapsedMs: 1000 }));
    const shown: string[] = [];
    display.setTotal(100, true);
    display.attach((l) => shown.push(`package: ${l}`), () => 'packing');
    for (done = 5; done <= 60; done += 5) display.update();
    display.stop();
    display.update(); // between the steps: nobody shows it
    display.setTotal(100, false);
    display.attach((l) => shown.push(`upload: ${l}`));
    for (done = 65; done <= 100; done += 5) display.update();
    display.stop();
    assert.deepEqual(shown.map((l) => /^(\w+): .*\((\d+)%\)/.exec(l)!.slice(1).join(' ')),
      ['package 0', 'package 10', 'package 20', 'package 30', 'package 40', 'package 50', 'package 60', 'upload 70', 'upload 80', 'upload 90', 'upload 100']);
    assert.match(shown[0]!, /; packing$/);
    // Nothing in json mode.
    const quiet = new TransferDisplay('json', () => ({ doneBytes: 1, sentBytes: 1, elapsedMs: 1 }));
    const none: string[] = [];
    quiet.attach((l) => none.push(l));
    quiet.update();
    quiet.stop();
    assert.deepEqual(none, []);
  });

  it('the live task list: a line at once and then once a second, none after stop', () => {
    mock.timers.enable({ apis: ['setInterval'] });
    try {
      let done = 0;
      const display = new TransferDisplay('tty', () => ({ doneBytes: done, sentBytes: done, elapsedMs: 1000 }));
      display.setTotal(100, false);
      const shown: string[] = [];
      display.attach((l) => shown.push(l), () => 'chunks');
      done = 50;
      display.update(); // a chunk: the tty line waits for the next second
      assert.equal(shown.length, 1);
      mock.timers.tick(1000);
      assert.deepEqual(shown.map((l) => /\((\d+)%\)/.exec(l)![1]), ['0', '50']);
      display.stop();
      mock.timers.tick(5000);
      assert.equal(shown.length, 2);
    } finally {
      mock.timers.reset();
    }
  });
});
