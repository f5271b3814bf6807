/**
 * The snapshot and packing a deploy starts alongside its preflight (lib/archive/pack-ahead.ts):
 * the same chunks as the package step's own packing, every chunk handed to the late follower
 * (those written before it followed at once, in order), a failure thrown where it is awaited
 * (never an unhandled rejection), and `stop()` leaves nothing writing.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PackAhead, packDirsOf } from '../../lib/archive/pack-ahead.ts';
import { packInputId, packToChunks, type ChunkInfo } from '../../lib/archive/pack.ts';

describe('PackAhead', () => {
  let tmp: string;
  let source: string;
  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-pack-ahead-'));
    source = path.join(tmp, 'source');
    await fs.mkdir(path.join(source, 'seg'), { recursive: true });
    // Incompressible bytes: several chunks of 64 KiB.
    await fs.writeFile(path.join(source, 'chroma.sqlite3'), crypto.randomBytes(300 * 1024));
    await fs.writeFile(path.join(source, 'seg', 'data_level0.bin'), crypto.randomBytes(200 * 1024));
  });
  after(async () => { await fs.rm(tmp, { recursive: true, force: true }); });

  it('a follower that comes after the packing ended gets every chunk, in order, and the same archive as packing in the step', async () => {
    const runDir = path.join(tmp, 'run-a');
    const ahead = new PackAhead({ source, ...packDirsOf(runDir), chunkSize: 64 * 1024, signal: new AbortController().signal });
    const finished = await ahead.packed; // all written before anyone follows
    const seen: ChunkInfo[] = [];
    const progress: number[] = [];
    const packed = await ahead.follow({ onChunk: (ch) => seen.push(ch), onProgress: (n) => progress.push(n) });
    assert.equal(packed, finished);
    assert.deepEqual(seen.map((c) => c.name), packed.chunks.map((c) => c.name));
    assert.ok(seen.length >= 8, `several chunks (${seen.length})`);
    assert.equal(progress.at(-1), packed.inputBytes);

    const snap = await ahead.snapshot;
    assert.equal(snap.dir, packDirsOf(runDir).snapshotDir);
    assert.equal(await ahead.inputId, await packInputId(snap.dir, 64 * 1024));
    const inStep = await packToChunks(snap.dir, path.join(tmp, 'in-step'), 64 * 1024);
    assert.equal(inStep.archiveSha256, packed.archiveSha256);
    assert.deepEqual(inStep.chunks.map((c) => c.sha256), packed.chunks.map((c) => c.sha256));
  });

  it('a follower that comes part-way gets the chunks written so far at once, then the rest as they are written', async () => {
    const runDir = path.join(tmp, 'run-b');
    const ahead = new PackAhead({ source, ...packDirsOf(runDir), chunkSize: 64 * 1024, signal: new AbortController().signal });
    await ahead.inputId; // the snapshot taken; packing goes on
    const seen: string[] = [];
    const packed = await ahead.follow({ onChunk: (ch) => seen.push(ch.name), onProgress: () => {} });
    assert.deepEqual(seen, packed.chunks.map((c) => c.name), 'each chunk once, in order');
    assert.throws(() => ahead.follow({ onChunk: () => {}, onProgress: () => {} }), /one follower/);
  });

  it('a missing source is the snapshot\'s own error where it is awaited; nothing is reported as unhandled before', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      const ahead = new PackAhead({ source: path.join(tmp, 'nope'), ...packDirsOf(path.join(tmp, 'run-c')), chunkSize: 64 * 1024, signal: new AbortController().signal });
      await new Promise((r) => setImmediate(r));
      await ahead.stop(); // settles every part
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(unhandled, []);
      await assert.rejects(ahead.snapshot, /does not exist/);
      await assert.rejects(ahead.packed, /does not exist/);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('stop() while it runs: every part has settled when it resolves (nothing left writing into the run dir)', async () => {
    const runDir = path.join(tmp, 'run-d');
    const ahead = new PackAhead({ source, ...packDirsOf(runDir), chunkSize: 64 * 1024, signal: new AbortController().signal });
    await ahead.inputId; // stopped while packing (or just after: either way nothing may write afterwards)
    await ahead.stop();
    const pending = Symbol('pending');
    for (const p of [ahead.snapshot, ahead.inputId, ahead.packed]) {
      assert.notEqual(await Promise.race([p.then(() => 'settled', () => 'settled'), new Promise((r) => setImmediate(() => r(pending)))]), pending, 'settled when stop() resolves (its handlers run before the next turn of the event loop)');
    }
    await fs.rm(runDir, { recursive: true, force: true });
    await assert.rejects(fs.stat(runDir), { code: 'ENOENT' });
  });
});
