import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import zlib from 'node:zlib';
import { UserError } from '../lib/common/errors.ts';
import { snapshotSource, walkTree } from '../lib/archive/snapshot.ts';
import { FIRST_CHUNK_BYTES, packToChunks, readPackManifest, verifyChunks } from '../lib/archive/pack.ts';

let tmp: string;
before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-archive-test-'));
});
after(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

/** A small persist-dir-like tree with nested dirs, an empty dir and a few modes. */
async function makeTree(root: string): Promise<void> {
  await fs.mkdir(path.join(root, 'seg-a'), { recursive: true });
  await fs.mkdir(path.join(root, 'seg-b', 'nested'), { recursive: true });
  await fs.mkdir(path.join(root, 'empty'));
  await fs.writeFile(path.join(root, 'chroma.sqlite3'), randomBytes(200_000));
  await fs.writeFile(path.join(root, 'seg-a', 'data_level0.bin'), randomBytes(70_000));
  await fs.writeFile(path.join(root, 'seg-a', 'header.bin'), Buffer.from('header'));
  await fs.writeFile(path.join(root, 'seg-a', 'length.bin'), Buffer.alloc(0));
  await fs.writeFile(path.join(root, 'seg-b', 'nested', 'link_lists.bin'), randomBytes(5_000));
  await fs.writeFile(path.join(root, 'seg-b', 'ünïcode name.txt'), 'x');
  await fs.chmod(path.join(root, 'seg-a', 'header.bin'), 0o600);
  await fs.chmod(path.join(root, 'seg-b', 'nested', 'link_lists.bin'), 0o755);
  await fs.chmod(path.join(root, 'seg-b'), 0o750);
  const old = new Date('2024-01-02T03:04:05Z');
  await fs.utimes(path.join(root, 'chroma.sqlite3'), old, old);
}

/** sha256 over every entry's relative path, type, mode, mtime and bytes. */
async function treeDigest(root: string, opts: { mtimes: 'ms' | 's' | 'files-s' } = { mtimes: 'ms' }): Promise<string> {
  const h = createHash('sha256');
  for (const e of await walkTree(root)) {
    let mtime: number | string;
    if (opts.mtimes === 'ms') mtime = e.stat.mtimeMs;
    else if (opts.mtimes === 's') mtime = Math.floor(e.stat.mtimeMs / 1000);
    else mtime = e.kind === 'file' ? Math.floor(e.stat.mtimeMs / 1000) : '-';
    h.update(`${e.rel}\0${e.kind}\0${(e.stat.mode & 0o7777).toString(8)}\0${mtime}\0`);
    if (e.kind === 'file') h.update(await fs.readFile(e.abs));
    h.update('\n');
  }
  return h.digest('hex');
}

describe('snapshotSource', () => {
  test('makes a byte-identical copy (modes, mtimes) and leaves the source untouched', async () => {
    const src = path.join(tmp, 'snap-src');
    await makeTree(src);
    const beforeDigest = await treeDigest(src);
    const dest = path.join(tmp, 'snap-dest');
    const r = await snapshotSource(src, dest);
    assert.equal(await treeDigest(src), beforeDigest, 'source changed');
    assert.equal(r.dir, dest);
    assert.equal(r.attempts, 1);
    // Same bytes, modes and mtimes (utimes keeps sub-second precision only to the millisecond).
    assert.equal(await treeDigest(dest, { mtimes: 's' }), await treeDigest(src, { mtimes: 's' }));
    assert.deepEqual(
      r.files.map((f) => f.path),
      ['./chroma.sqlite3', './seg-a/data_level0.bin', './seg-a/header.bin', './seg-a/length.bin', './seg-b/nested/link_lists.bin', './seg-b/ünïcode name.txt'],
    );
    assert.equal(r.bytes, 200_000 + 70_000 + 6 + 0 + 5_000 + 1);
    assert.ok((await fs.stat(path.join(dest, 'empty'))).isDirectory());
  });

  test('refuses a non-empty destination, a symlink and an open SQLite transaction', async () => {
    const src = path.join(tmp, 'snap-refuse');
    await makeTree(src);
    const busy = path.join(tmp, 'busy-dest');
    await fs.mkdir(busy);
    await fs.writeFile(path.join(busy, 'x'), 'x');
    await assert.rejects(snapshotSource(src, busy), (e: unknown) => e instanceof UserError && /not empty/.test(e.message));
    await assert.rejects(snapshotSource(src, path.join(src, 'inside')), UserError);

    await fs.writeFile(path.join(src, 'chroma.sqlite3-journal'), 'torn');
    await assert.rejects(snapshotSource(src, path.join(tmp, 'j-dest')), (e: unknown) => e instanceof UserError && /chroma\.sqlite3-journal/.test(e.message));
    await fs.writeFile(path.join(src, 'chroma.sqlite3-journal'), ''); // empty journal is fine
    const ok = await snapshotSource(src, path.join(tmp, 'j-dest2'));
    assert.ok(ok.files.some((f) => f.path === './chroma.sqlite3-journal'));

    await fs.symlink('chroma.sqlite3', path.join(src, 'seg-a', 'alias'));
    await assert.rejects(snapshotSource(src, path.join(tmp, 'l-dest')), (e: unknown) => e instanceof UserError && e.message.includes(path.join(src, 'seg-a', 'alias')));
    await fs.rm(path.join(src, 'seg-a', 'alias'));
  });

  test('gives up with a UserError when a writer keeps changing the source, leaving no partial copy', async () => {
    const src = path.join(tmp, 'snap-busy');
    await makeTree(src);
    const target = path.join(src, 'chroma.sqlite3');
    const writer = spawn(process.execPath, [
      '-e',
      `const fs = require('fs'); const f = process.argv[1];
       const sleep = new Int32Array(new SharedArrayBuffer(4));
       process.stdout.write('ready\\n');
       for (;;) { fs.appendFileSync(f, 'x'); Atomics.wait(sleep, 0, 0, 1); }`,
      target,
    ], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve) => writer.stdout!.once('data', () => resolve()));
      const dest = path.join(tmp, 'busy-dest2');
      await assert.rejects(
        snapshotSource(src, dest, { maxAttempts: 3 }),
        (e: unknown) =>
          e instanceof UserError &&
          e.message === `source ${src} changed while it was being copied (is a Chroma server writing to it?): stop the writer or retry when it is idle`,
      );
      assert.deepEqual(await fs.readdir(dest), []);
    } finally {
      writer.kill('SIGKILL');
    }
  });
});

describe('packToChunks', () => {
  let src: string;
  before(async () => {
    src = path.join(tmp, 'pack-src');
    await makeTree(src);
  });

  test('is deterministic: two packs give identical chunks', async () => {
    const a = await packToChunks(src, path.join(tmp, 'pack-a'), 64 * 1024);
    const b = await packToChunks(src, path.join(tmp, 'pack-b'), 64 * 1024);
    assert.deepEqual(a.chunks.map((c) => [c.name, c.size, c.sha256]), b.chunks.map((c) => [c.name, c.size, c.sha256]));
    assert.equal(a.archiveSha256, b.archiveSha256);
    for (const c of a.chunks) {
      const other = path.join(tmp, 'pack-b', c.name);
      assert.ok((await fs.readFile(c.file)).equals(await fs.readFile(other)));
    }
  });

  test('the chunks grow from 1 MiB, doubling, up to the chunk size; the cat of them is the archive', async () => {
    // ~9 MiB of random bytes: gzip cannot shrink them, so the archive is ~9 MiB.
    const big = path.join(tmp, 'ramp-src');
    await fs.mkdir(big);
    await fs.writeFile(path.join(big, 'chroma.sqlite3'), randomBytes(9 * 1024 * 1024));
    const chunkSize = 3 * 1024 * 1024;
    const r = await packToChunks(big, path.join(tmp, 'ramp-out'), chunkSize);
    assert.equal(FIRST_CHUNK_BYTES, 1024 * 1024);
    const sizes = r.chunks.map((c) => c.size);
    assert.deepEqual(sizes.slice(0, -1), [1, 2, 3, 3].map((m) => m * 1024 * 1024).slice(0, sizes.length - 1), `sizes ${sizes.join(', ')}`);
    assert.ok(sizes.at(-1)! > 0 && sizes.at(-1)! <= chunkSize);
    assert.equal(sizes.reduce((a, b) => a + b, 0), r.archiveBytes);
    const whole = Buffer.concat(await Promise.all(r.chunks.map((c) => fs.readFile(c.file))));
    assert.equal(createHash('sha256').update(whole).digest('hex'), r.archiveSha256);
    // Cut by the index alone: a second pack (a rerun's) gives the same chunks.
    const again = await packToChunks(big, path.join(tmp, 'ramp-again'), chunkSize, { hashOnly: true });
    assert.deepEqual(again.chunks.map((c) => [c.size, c.sha256]), r.chunks.map((c) => [c.size, c.sha256]));
  });

  test('every chunk but the last has exactly chunkSize bytes (below the first chunk size); manifest and verify agree', async () => {
    const chunkSize = 10_000;
    const out = path.join(tmp, 'pack-bound');
    const progress: number[] = [];
    const r = await packToChunks(src, out, chunkSize, { onProgress: (n) => progress.push(n) });
    assert.ok(r.chunks.length > 5);
    r.chunks.forEach((c, i) => {
      assert.equal(c.index, i);
      assert.equal(c.name, `chunk-${String(i).padStart(6, '0')}`);
      assert.equal(c.file, path.join(out, c.name));
      if (i < r.chunks.length - 1) assert.equal(c.size, chunkSize);
      else assert.ok(c.size > 0 && c.size <= chunkSize);
    });
    for (const c of r.chunks) {
      const buf = await fs.readFile(c.file);
      assert.equal(buf.length, c.size);
      assert.equal(createHash('sha256').update(buf).digest('hex'), c.sha256);
    }
    const all = Buffer.concat(await Promise.all(r.chunks.map((c) => fs.readFile(c.file))));
    assert.equal(all.length, r.archiveBytes);
    assert.equal(createHash('sha256').update(all).digest('hex'), r.archiveSha256);
    assert.equal(r.inputBytes, 200_000 + 70_000 + 6 + 0 + 5_000 + 1);
    assert.equal(progress.at(-1), r.inputBytes);
    assert.ok(progress.every((n, i) => i === 0 || n >= progress[i - 1]!));

    assert.deepEqual(await readPackManifest(out), r);
    assert.equal(await verifyChunks(r), true);
    const last = r.chunks.at(-1)!;
    const bytes = await fs.readFile(last.file);
    bytes[0] = bytes[0]! ^ 0xff;
    await fs.writeFile(last.file, bytes);
    assert.equal(await verifyChunks(r), false);
    assert.equal(await readPackManifest(path.join(tmp, 'no-such-dir')), null);
  });

  test('round trips through the system tar: cat chunk-* | tar xzf - -C X recreates the tree', async () => {
    const out = path.join(tmp, 'pack-rt');
    const r = await packToChunks(src, out, 32 * 1024);
    const x = path.join(tmp, 'pack-rt-x');
    await fs.mkdir(x);
    const names = r.chunks.map((c) => c.name).join(' ');
    execFileSync('sh', ['-c', `cd "$1" && cat ${names} | tar xzf - -C "$2"`, 'sh', out, x]);
    // Same files, bytes, modes and (whole-second) file mtimes; directory mtimes are not carried.
    assert.equal(await treeDigest(x, { mtimes: 'files-s' }), await treeDigest(src, { mtimes: 'files-s' }));
    const listing = execFileSync('sh', ['-c', `cd "$1" && cat ${names} | tar tzf -`, 'sh', out], { encoding: 'utf8' })
      .trim().split('\n');
    assert.ok(listing.every((p) => p === './' || p.startsWith('./')), listing.join(','));
    assert.deepEqual(
      listing.filter((p) => !p.endsWith('/')),
      r.fileList,
    );
  });

  test('memory stays flat while packing ~60 MB with 1 MiB chunks', async () => {
    const big = path.join(tmp, 'pack-big');
    await fs.mkdir(path.join(big, 'seg'), { recursive: true });
    const fh = await fs.open(path.join(big, 'chroma.sqlite3'), 'w');
    for (let i = 0; i < 40; i++) await fh.write(randomBytes(1024 * 1024));
    await fh.close();
    const fh2 = await fs.open(path.join(big, 'seg', 'data_level0.bin'), 'w');
    for (let i = 0; i < 20; i++) await fh2.write(randomBytes(1024 * 1024));
    await fh2.close();
    (globalThis as { gc?: () => void }).gc?.();

    const baseline = process.memoryUsage.rss();
    let peak = baseline;
    const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage.rss()); }, 10);
    try {
      const r = await packToChunks(big, path.join(tmp, 'pack-big-out'), 1024 * 1024, {
        onProgress: () => { peak = Math.max(peak, process.memoryUsage.rss()); },
      });
      assert.equal(r.inputBytes, 60 * 1024 * 1024);
      assert.ok(r.chunks.length >= 60);
    } finally {
      clearInterval(timer);
    }
    const growth = peak - baseline;
    assert.ok(growth < 60 * 1024 * 1024, `RSS grew by ${(growth / 1048576).toFixed(1)} MiB`);
  });
});

describe('parallel gzip', () => {
  test('members of 1 MiB compressed on two cores: one valid gzip stream, the same bytes for any worker count', async () => {
    const dir = path.join(tmp, 'pgz-src');
    await fs.mkdir(dir, { recursive: true });
    // ~3.5 MiB of half-compressible data: several members, and a last partial block.
    const half = Buffer.concat([randomBytes(900_000), Buffer.alloc(900_000, 7)]);
    await fs.writeFile(path.join(dir, 'a.bin'), Buffer.concat([half, half]));
    const one = await packToChunks(dir, path.join(tmp, 'pgz-1'), 1 << 20, { gzipWorkers: 1 });
    const two = await packToChunks(dir, path.join(tmp, 'pgz-2'), 1 << 20, { gzipWorkers: 2 });
    assert.equal(two.archiveSha256, one.archiveSha256);
    const archive = Buffer.concat(await Promise.all(two.chunks.map((c) => fs.readFile(c.file))));
    // Walk the members one by one: each is a gzip header, one deflate stream, an 8-byte trailer.
    let members = 0;
    for (let rest = archive; rest.length > 0; members++) {
      assert.deepEqual([...rest.subarray(0, 2)], [0x1f, 0x8b], `member ${members} starts with the gzip magic`);
      rest = rest.subarray(gzipMemberLength(rest));
    }
    assert.ok(members >= 4, `${members} members`);
    // The whole stream decompresses to one tar that GNU tar extracts byte-identically.
    const out = path.join(tmp, 'pgz-x');
    await fs.mkdir(out);
    execFileSync('tar', ['xzf', '-', '-C', out], { input: archive });
    assert.deepEqual(await fs.readFile(path.join(out, 'a.bin')), await fs.readFile(path.join(dir, 'a.bin')));
  });
});

/** Bytes of the gzip member at the start of `buf`: 10-byte header (no optional fields), deflate data, trailer. */
function gzipMemberLength(buf: Buffer): number {
  assert.equal(buf[3], 0, 'no optional header fields');
  const r = zlib.inflateRawSync(buf.subarray(10), { info: true }) as unknown as { engine: { bytesWritten: number } };
  return 10 + r.engine.bytesWritten + 8;
}
