/**
 * The remote extractor (lib/remote/extractor.ts) under a LocalHost in a temp volume, no servers:
 * chunks accepted one at a time after it started are extracted as they come and the reassemble
 * script moves that tree to NAME.new; an extraction that fed a wrong chunk is not used (the
 * one-pass extraction from chunk 0 runs, and a wrong archive still fails with NAME.new removed);
 * a rerun's open retires the earlier worker; a finished clean extraction is kept by a rerun's open.
 * `--upload stream` sends and checks each chunk in one remote command.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { packToChunks, type PackResult } from '../../lib/archive/pack.ts';
import { RemoteCommandError } from '../../lib/common/errors.ts';
import { openIncomingScript, stopExtractorScript } from '../../lib/remote/extractor.ts';
import { acceptChunkScript, parseKv, reassembleScript } from '../../lib/remote/scripts.ts';
import { LocalHost } from '../../lib/hosts/local.ts';
import type { RunOptions, RunResult } from '../../lib/hosts/remote-host.ts';
import type { RemoteScript } from '../../lib/remote/shell.ts';
import { ChunkShipper } from '../../lib/transfer/chunk-shipper.ts';
import { StreamUploader } from '../../lib/transfer/stream.ts';
import { tempVolume, type TempVolume } from './local-volume.ts';
import { processRuns } from '../helpers/proc-scan.ts';

/** A LocalHost that records the title of every remote command it runs. */
class CountingHost extends LocalHost {
  readonly titles: string[] = [];
  override async run(script: RemoteScript, opts: RunOptions = {}): Promise<RunResult> {
    this.titles.push(script.title);
    return super.run(script, opts);
  }
}

/** A source tree of a few files (random bytes: the archive is several chunks of 64 KiB). */
async function sourceTree(dir: string): Promise<void> {
  await fs.mkdir(path.join(dir, 'seg'), { recursive: true });
  await fs.writeFile(path.join(dir, 'chroma.sqlite3'), crypto.randomBytes(150_000));
  await fs.writeFile(path.join(dir, 'seg', 'data_level0.bin'), crypto.randomBytes(120_000));
  await fs.writeFile(path.join(dir, 'seg', 'header.bin'), 'header');
}

const CHUNK = 64 * 1024;

describe('the remote extractor', () => {
  let v: TempVolume;
  let pack: PackResult;
  let incoming: string;
  let src: string;
  before(async () => {
    v = await tempVolume();
    src = path.join(v.root, 'src');
    await sourceTree(src);
    pack = await packToChunks(src, path.join(v.root, 'chunks'), CHUNK);
    assert.ok(pack.chunks.length >= 4, `${pack.chunks.length} chunks`);
    incoming = path.join(v.layout.ferry, 'incoming', 'abc');
  });
  after(async () => { await v.dispose(); });

  /** The chunk as the upload leaves it: a partial file, then the accept script's checked rename. */
  async function arrive(i: number, body?: Buffer): Promise<void> {
    const ch = pack.chunks[i]!;
    const partial = path.join(incoming, `.${ch.name}.partial`);
    await fs.writeFile(partial, body ?? await fs.readFile(ch.file));
    if (body) await fs.rename(partial, path.join(incoming, ch.name)); // planted: no check
    else await v.host.run(acceptChunkScript(partial, path.join(incoming, ch.name), ch.size, ch.sha256));
  }
  const open = async () => parseKv((await v.host.run(openIncomingScript(incoming))).stdout).get('extractor');
  const reassemble = async () => parseKv((await v.host.run(reassembleScript(v.layout, incoming, pack.archiveSha256, pack.chunks.map((c) => c.name)))).stdout);
  const reset = async () => {
    await fs.rm(v.layout.ferry, { recursive: true, force: true });
    await fs.rm(v.layout.next, { recursive: true, force: true });
  };
  async function sameTree(dir: string): Promise<void> {
    for (const f of ['chroma.sqlite3', 'seg/data_level0.bin', 'seg/header.bin']) {
      assert.ok((await fs.readFile(path.join(dir, f))).equals(await fs.readFile(path.join(src, f))), f);
    }
  }

  it('extracts the chunks as they are accepted; reassemble moves that tree to NAME.new', async () => {
    await reset();
    assert.equal(await open(), 'started');
    for (let i = pack.chunks.length - 1; i >= 1; i--) await arrive(i); // out of order: it waits for chunk 0
    await arrive(0);
    const kv = await reassemble();
    assert.equal(kv.get('extracted'), 'while-uploading');
    assert.equal(Number(kv.get('files')), 3);
    await sameTree(v.layout.next);
    // Nothing of the extractor left in the incoming dir: only the chunks.
    assert.deepEqual((await fs.readdir(incoming)).sort(), pack.chunks.map((c) => c.name));
  });

  it('an extraction that was fed a wrong chunk is not used: the chunks are extracted again from chunk 0', async () => {
    await reset();
    assert.equal(await open(), 'started');
    const good0 = await fs.readFile(pack.chunks[0]!.file);
    const bad0 = Buffer.from(good0);
    bad0[bad0.length - 1]! ^= 0xff; // the gzip stream still starts right; its sha256 differs
    await arrive(0, bad0);
    for (let i = 1; i < pack.chunks.length; i++) await arrive(i);
    // The real chunk 0 arrives (a resent chunk) after the extractor read the wrong one.
    await fs.rm(path.join(incoming, pack.chunks[0]!.name));
    await arrive(0);
    const kv = await reassemble();
    assert.equal(kv.get('extracted'), undefined);
    assert.equal(Number(kv.get('files')), 3);
    await sameTree(v.layout.next);
  });

  it('a wrong archive still fails as before, with NAME.new removed', async () => {
    await reset();
    assert.equal(await open(), 'started');
    const bad = Buffer.from(await fs.readFile(pack.chunks[1]!.file));
    bad[10]! ^= 0xff;
    await arrive(0);
    await arrive(1, bad);
    for (let i = 2; i < pack.chunks.length; i++) await arrive(i);
    const e = await reassemble().then(() => assert.fail('expected a failure'), (x: unknown) => x);
    assert.ok(e instanceof RemoteCommandError, String(e));
    assert.ok(e.exitCode === 11 || e.exitCode === 12, `exit ${e.exitCode}: ${e.message}`);
    await assert.rejects(fs.stat(v.layout.next));
  });

  it('a rerun\'s open retires the earlier worker; the new one extracts', async () => {
    await reset();
    assert.equal(await open(), 'started');
    await arrive(0);
    const first = (await fs.readdir(incoming)).filter((f) => f.startsWith('.extract-') && f !== '.extract-end');
    assert.equal(first.length, 1);
    assert.equal(await open(), 'started'); // the rerun
    const now = (await fs.readdir(incoming)).filter((f) => /^\.extract-[0-9a-f]+$/.test(f));
    assert.equal(now.length, 1);
    assert.notEqual(now[0], first[0]);
    for (let i = 1; i < pack.chunks.length; i++) await arrive(i);
    const kv = await reassemble();
    assert.equal(kv.get('extracted'), 'while-uploading');
    await sameTree(v.layout.next);
  });

  it('a run that ends before its reassemble stops its own worker (and only its own); the chunks stay', async () => {
    await reset();
    const kv = parseKv((await v.host.run(openIncomingScript(incoming))).stdout);
    const tok = kv.get('extractor_token')!;
    assert.match(tok, /^[0-9a-f]+$/);
    await arrive(0);
    const pidFile = path.join(incoming, `.extract-${tok}`, 'pid');
    const pid = Number((await fs.readFile(pidFile, 'utf8')).trim());
    assert.ok(processRuns(pid), 'the worker runs, waiting for chunk 1');
    // Another run's token: not ours, the worker goes on.
    assert.equal(parseKv((await v.host.run(stopExtractorScript(incoming, '123abc'))).stdout).get('stopped'), 'not-ours');
    assert.ok(processRuns(pid));
    assert.equal(parseKv((await v.host.run(stopExtractorScript(incoming, tok))).stdout).get('stopped'), 'yes');
    assert.equal(processRuns(pid), false, 'the worker has exited when the stop returns');
    assert.deepEqual((await fs.readdir(incoming)).filter((f) => f.startsWith('chunk-')), [pack.chunks[0]!.name], 'the accepted chunk is kept');
    assert.deepEqual((await fs.readdir(incoming)).filter((f) => f.includes('.tmp')), [], 'no temp file');
  });

  it('a worker that has exited but is not reaped yet (a zombie, where PID 1 reaps late or never) is stopped, not waited for', async () => {
    await reset();
    const tok = 'abc123';
    await fs.mkdir(path.join(incoming, `.extract-${tok}`), { recursive: true });
    await fs.writeFile(path.join(incoming, '.extract.owner'), `${tok}\n`);
    const pidFile = path.join(incoming, `.extract-${tok}`, 'pid');
    // A child blocked on a fifo; its parent then becomes a long sleep, which never reaps. The
    // child is let go only once the parent is that sleep (its shell would have reaped it).
    const fifo = path.join(v.root, 'zombie-fifo');
    await fs.rm(fifo, { force: true });
    execFileSync('mkfifo', [fifo]);
    const parent = spawn('sh', ['-c', 'read -r _ < "$2" & echo "$!" > "$1.tmp" && mv "$1.tmp" "$1"; exec sleep 60', 'sh', pidFile, fifo], { stdio: 'ignore' });
    const until = async (what: string, ok: () => Promise<boolean>) => {
      for (let i = 0; i < 1000; i++) {
        if (await ok()) return;
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.fail(`timed out waiting until ${what}`);
    };
    try {
      await until('the parent is the sleep', async () => (await fs.readFile(`/proc/${parent.pid}/cmdline`, 'latin1').catch(() => '')).startsWith('sleep\0'));
      const pid = Number((await fs.readFile(pidFile, 'utf8')).trim());
      await fs.writeFile(fifo, 'go\n');
      await until('the child is a zombie', async () => / Z /.test(await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')));
      assert.ok(pid, 'the zombie is there');
      assert.ok(!processRuns(pid));
      // With `kill -0` as the test, the stop waited its 3 s and said still-running.
      assert.equal(parseKv((await v.host.run(stopExtractorScript(incoming, tok, 3))).stdout).get('stopped'), 'yes');
    } finally {
      parent.kill('SIGKILL');
      // A child still blocked on the fifo (a failure above) is let go; none: ENXIO.
      await fs.open(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK).then((f) => f.close(), () => undefined);
      await fs.rm(fifo, { force: true });
    }
  });

  it('a finished clean extraction is kept by a rerun\'s open and used by its reassemble', async () => {
    await reset();
    assert.equal(await open(), 'started');
    for (let i = 0; i < pack.chunks.length; i++) await arrive(i);
    // What a reassemble killed after telling the worker the count leaves: the worker finishes.
    await fs.writeFile(path.join(incoming, '.extract-end'), `${pack.chunks.length}\n`);
    const dir = (await fs.readdir(incoming)).find((f) => /^\.extract-[0-9a-f]+$/.test(f))!;
    const status = path.join(incoming, dir, 'status');
    for (let n = 0; n < 600 && !(await fs.stat(status).catch(() => null)); n++) await new Promise((r) => setTimeout(r, 50));
    assert.match(await fs.readFile(status, 'utf8'), /^rc=0\nsum=[0-9a-f]{64}\nfed=\d+\n$/);
    assert.equal(await open(), 'finished');
    const kv = await reassemble();
    assert.equal(kv.get('extracted'), 'while-uploading');
    await sameTree(v.layout.next);
  });

  it('--upload stream: one remote command per chunk sends and checks it; a changed chunk file is refused and leaves nothing', async () => {
    await reset();
    const host = new CountingHost(v.root);
    const shipper = new ChunkShipper(host, new StreamUploader(host), incoming, 'abc', 2, new AbortController().signal);
    await shipper.open();
    assert.equal(shipper.extractor, 'started');
    for (const ch of pack.chunks) shipper.ship(ch);
    await shipper.finish();
    assert.equal(shipper.chunksSent, pack.chunks.length);
    assert.deepEqual(host.titles, ['list uploaded chunks, start the extractor', ...pack.chunks.map(() => 'receive and verify a chunk')]);
    const kv = await reassemble();
    assert.equal(kv.get('extracted'), 'while-uploading');
    await sameTree(v.layout.next);

    // A chunk file that no longer matches its recorded sha256: the remote check refuses it.
    const ch = pack.chunks[0]!;
    const copy = path.join(v.root, 'changed-chunk');
    const body = await fs.readFile(ch.file);
    body[0]! ^= 0xff;
    await fs.writeFile(copy, body);
    await fs.rm(path.join(incoming, ch.name));
    const again = new ChunkShipper(host, new StreamUploader(host), incoming, 'abc', 1, new AbortController().signal);
    await again.open();
    again.ship({ ...ch, file: copy });
    await assert.rejects(again.finish(), (e: unknown) => e instanceof RemoteCommandError && e.exitCode === 9 && /sha256 mismatch/.test(e.message + e.stderr));
    const left = await fs.readdir(incoming);
    assert.ok(!left.includes(ch.name) && !left.some((f) => f.endsWith('.partial')), left.join(', '));
    // Its worker waits for chunk 0 that will not come: stopped, as a failed run stops it (else it
    // still writes in the volume while the suite removes it).
    await again.stopExtractor();
  });
});
