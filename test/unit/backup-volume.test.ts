/**
 * The backup listing, state writes and space handling of remote scripts, each run under a
 * LocalHost in a temp volume (no servers): names with spaces listed and foreign names ignored; a
 * state write killed between its write and its rename leaves a temp file that the next write
 * removes (remote and local); a full tmpfs says "volume full" for a state write, a failed chunk and
 * an extraction, and leaves no temp file.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeJsonAtomic } from '../../lib/engine/atomic-file.ts';
import { listBackups } from '../../lib/backups/catalog.ts';
import { RemoteCommandError, UserError } from '../../lib/common/errors.ts';
import { REFUSALS, refusalOf } from '../../lib/remote/refusals.ts';
import { remoteLayout } from '../../lib/remote/layout.ts';
import { discardFailedChunkScript, reassembleScript, writeFileScript } from '../../lib/remote/scripts.ts';
import { newState, RunbookStateStore } from '../../lib/engine/state.ts';
import { rejection, fillUp, injectMvFault, mountTmpfs, mvWrapperDir, tempVolume, unmount, withEnv, type TempVolume } from './local-volume.ts';

/** A pid that no longer runs (a child that has exited). */
function deadPid(): number {
  const r = spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' });
  return Number(r.stdout.trim());
}

async function tempNames(dir: string): Promise<string[]> {
  const all = await fs.readdir(dir, { recursive: true }).catch(() => [] as string[]);
  return all.filter((f) => /\.tmp|\.partial$|\.archive\./.test(path.basename(f)));
}

describe('the backup listing', () => {
  let v: TempVolume;
  before(async () => { v = await tempVolume('my db'); });
  after(async () => { await v.dispose(); });

  it('lists names with spaces; only this db dir\'s archive names count, whatever else the dir holds', async () => {
    await fs.mkdir(v.layout.backups, { recursive: true });
    const put = async (name: string, body: string, sum?: string) => {
      await fs.writeFile(path.join(v.layout.backups, name), body);
      if (sum !== undefined) await fs.writeFile(path.join(v.layout.backups, `${name}.sha256`), sum);
    };
    const newer = 'my db-20260102T000000Z.tar.gz';
    const older = 'my db-20260101T000000Z.tar.gz';
    const sha = crypto.createHash('sha256').update('a').digest('hex');
    await put(newer, 'aaaa', `${sha}  ${newer}\n`);
    await put(older, 'bb', 'not a checksum\n');
    await put('my db-20260103T000000Z.tar.gz\nbackup 1 x my db-20990101T000000Z.tar.gz', 'forged');
    await put('my-20260104T000000Z.tar.gz', 'another db dir');
    await put('my db-latest.tar.gz', 'no stamp');
    const list = await listBackups(v.host, v.layout);
    assert.deepEqual(list.map((b) => [b.name, b.bytes, b.sha256]), [[newer, 4, sha], [older, 2, '-']]);
    assert.equal(list[0]!.date, '2026-01-02T00:00:00Z');
  });
});

describe('state writes leave no temp file behind', () => {
  let v: TempVolume;
  let savedPath: string | undefined;
  before(async () => {
    v = await tempVolume();
    savedPath = process.env.PATH;
    process.env.PATH = `${await mvWrapperDir(path.join(v.root, 'bin'))}:${savedPath}`;
  });
  after(async () => {
    process.env.PATH = savedPath;
    await v.dispose();
  });

  it('remote: a writer killed before its rename leaves FILE.tmp.<pid>; the next write removes it, not a live writer\'s', async () => {
    const file = path.join(v.layout.ferry, 'state-deploy-chroma_db.json');
    await v.host.run(writeFileScript(file, '{"n":1}'));
    await injectMvFault(v, 1, 'kill-before');
    await rejection(v.host.run(writeFileScript(file, '{"n":2}')));
    const left = (await fs.readdir(v.layout.ferry)).filter((f) => f.includes('.tmp.'));
    assert.equal(left.length, 1, 'the killed writer left its temp file (else this test shows nothing)');
    await fs.rm(path.join(v.root, 'mv-fault'));
    const live = `state-deploy-chroma_db.json.tmp.${process.pid}`;
    await fs.writeFile(path.join(v.layout.ferry, live), 'a writer that still runs');
    await v.host.run(writeFileScript(file, '{"n":3}'));
    assert.equal(await fs.readFile(file, 'utf8'), '{"n":3}\n');
    assert.deepEqual((await fs.readdir(v.layout.ferry)).filter((f) => f.includes('.tmp.')), [live]);
  });

  it('local: temp files of a killed process are removed by the next write; a running one\'s are kept', async () => {
    const dir = path.join(v.root, 'local-state');
    await fs.mkdir(dir);
    const file = path.join(dir, 'deploy-0123.json');
    const dead = deadPid();
    const stale = [`deploy-0123.json.tmp.${dead}.0`, `deploy-0123.json.${dead}.1700000000000.tmp`];
    for (const f of stale) await fs.writeFile(path.join(dir, f), '{"half":');
    const running = `deploy-0123.json.tmp.${process.ppid}.0`;
    await fs.writeFile(path.join(dir, running), 'a writer that still runs');
    await fs.writeFile(path.join(dir, 'deploy-0123.json.tmp.notes'), 'not ours');
    await writeJsonAtomic(file, { ok: true });
    assert.deepEqual(JSON.parse(await fs.readFile(file, 'utf8')), { ok: true });
    assert.deepEqual((await fs.readdir(dir)).sort(), ['deploy-0123.json', 'deploy-0123.json.tmp.notes', running].sort());
  });
});

describe('a full volume (a small tmpfs) says "volume full" and keeps no temp file', () => {
  let v: TempVolume;
  let mnt = '';
  let skip: string | undefined;
  before(async () => {
    v = await tempVolume();
    mnt = path.join(v.root, 'vol', 'small');
    await fs.mkdir(mnt);
    skip = await mountTmpfs(mnt, 2048);
    if (skip && process.env.CI === 'true' && process.getuid?.() === 0) throw new Error(`cannot mount a tmpfs under CI=true as root: ${skip}`);
    if (skip) process.stderr.write(`\n!!! SKIPPING the full-volume tests: ${skip}\n\n`);
  });
  after(async () => {
    if (!skip) unmount(mnt);
    await v.dispose();
  });

  it('runbook state: the remote and the local copy each say "volume full: N MiB free, needed M MiB"', async (t) => {
    if (skip) return t.skip(skip);
    const layout = remoteLayout(mnt, 'chroma_db');
    const state = newState('deploy', 'run1', v.host.label, layout.live, ['preflight']);
    state.results.preflight = { big: 'x'.repeat(4096) };
    await fillUp(mnt);
    try {
      // The remote copy, with the local one on a disk that has room.
      const roomy = path.join(v.root, 'state-roomy');
      const remote = await withEnv({ CHROMA_FERRY_STATE_DIR: roomy }, () => rejection(new RunbookStateStore(v.host, layout, 'deploy').save(state)));
      assert.ok(remote instanceof UserError, String(remote));
      assert.match(remote.message, /^volume full: 0 MiB free, needed 1 MiB \(.*small on local:.*\); free space there and run again$/);
      // The local copy on the full disk: refused before the remote write.
      const local = await withEnv({ CHROMA_FERRY_STATE_DIR: path.join(mnt, 'state') }, async () => {
        await fs.rm(path.join(mnt, 'filler'));
        await fs.mkdir(path.join(mnt, 'state'));
        await fillUp(mnt);
        return rejection(new RunbookStateStore(v.host, remoteLayout(path.join(v.root, 'vol'), 'chroma_db'), 'deploy').save(state));
      });
      assert.ok(local instanceof UserError, String(local));
      assert.match(local.message, /^volume full: 0 MiB free, needed 1 MiB \(.*small\/state\); free space there and run again$/);
      assert.deepEqual(await tempNames(mnt), []);
    } finally {
      await fs.rm(path.join(mnt, 'filler'), { force: true });
      await fs.rm(path.join(mnt, 'state'), { recursive: true, force: true });
    }
  });

  it('a raw host.run of a refusing script says the refusal\'s line, not ferry_ lines or "write error"', async (t) => {
    if (skip) return t.skip(skip);
    await fillUp(mnt);
    try {
      const e = await rejection(v.host.run(writeFileScript(path.join(mnt, 'x.json'), '{}')));
      assert.ok(e instanceof RemoteCommandError);
      assert.equal(e.exitCode, REFUSALS['volume-full'].code);
      assert.match(e.message, /^write the runbook state: volume full: 0 MiB free, needed 1 MiB \(.*small on the remote host\); free space there and run again$/);
    } finally {
      await fs.rm(path.join(mnt, 'filler'), { force: true });
    }
  });

  it('a chunk that failed to arrive: its partial goes; volume-full only when the volume cannot take it', async (t) => {
    if (skip) return t.skip(skip);
    const incoming = path.join(mnt, '.ferry', 'incoming', 'abc');
    await fs.mkdir(incoming, { recursive: true });
    const partial = path.join(incoming, '.chunk-000000.partial');
    try {
      await fs.writeFile(partial, 'half a chunk');
      await v.host.run(discardFailedChunkScript(partial, 1024 * 1024));
      await assert.rejects(fs.access(partial), 'the partial is removed');
      // A disk filled by the upload itself: the partial holds what fitted.
      await fillUp(mnt);
      await fs.rename(path.join(mnt, 'filler'), partial);
      const e = await rejection(v.host.run(discardFailedChunkScript(partial, 4 * 1024 * 1024)));
      assert.equal(refusalOf(e)?.reason, 'volume-full');
      assert.match((e as Error).message, /^discard a failed chunk: volume full: 2 MiB free, needed 4 MiB/);
      await assert.rejects(fs.access(partial), 'the partial is removed');
    } finally {
      await fs.rm(path.join(mnt, '.ferry'), { recursive: true, force: true });
    }
  });

  it('reassemble: an extraction that fills the volume is volume-full; NAME.new and the hash files are gone', async (t) => {
    if (skip) return t.skip(skip);
    const layout = remoteLayout(mnt, 'chroma_db');
    const incoming = path.join(mnt, '.ferry', 'incoming', 'abc');
    const src = path.join(v.root, 'src', 'chroma_db');
    await fs.mkdir(incoming, { recursive: true });
    await fs.mkdir(src, { recursive: true });
    try {
      // 3 MiB of zeros: a tiny archive whose extraction does not fit in 2 MiB.
      await fs.writeFile(path.join(src, 'chroma.sqlite3'), Buffer.alloc(3 * 1024 * 1024));
      const chunk = path.join(incoming, 'chunk-000000');
      const r = spawnSync('sh', ['-c', 'tar cf - -C "$1" . | gzip -1 > "$2"', 'pack', src, chunk]);
      assert.equal(r.status, 0, String(r.stderr));
      const sha = crypto.createHash('sha256').update(await fs.readFile(chunk)).digest('hex');
      const e = await rejection(v.host.run(reassembleScript(layout, incoming, sha, ['chunk-000000'])));
      assert.equal(refusalOf(e)?.reason, 'volume-full', String(e));
      assert.match((e as Error).message, /^reassemble and extract: volume full: \d+ MiB free, needed \d+ MiB/);
      const { free_mib: free, need_mib: need } = refusalOf(e)!.details;
      assert.ok(Number(need) > Number(free), `needed ${need} > free ${free}`);
      await assert.rejects(fs.access(layout.next), 'NAME.new removed');
      assert.deepEqual(await tempNames(mnt), []);
    } finally {
      await fs.rm(path.join(mnt, '.ferry'), { recursive: true, force: true });
    }
  });
});
