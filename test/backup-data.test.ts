/**
 * Backups hold data (issue 15, 6 and 7): a symlinked or non-Chroma live dir is refused; a write
 * during the read is read again until a read is proven stable (a GNU tar wrapper first on PATH
 * appends to every file of the live dir at a tar checkpoint, i.e. while tar reads); a live dir
 * that never stops changing is refused with the fix; a --db-dir with a space is listed and pruned;
 * a full volume (a small tmpfs) says "volume full: N MiB free, needed M MiB" for the backup and a
 * deploy's upload, and leaves no temp file. Real Chroma dirs, the CLI as a child, `local:` targets.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { fileSha256 } from '../testkit/tree-digest.ts';
import { assertOneLineRefusal, deployArgs, digestTree, makeDeployEnv, OLD_SPEC, runCli, sampleDbCopy, TEST_STATE_DIR, type DeployEnv } from './helpers/deploy-env.ts';
import { mountTmpfs, unmount, which } from './unit/local-volume.ts';

function kv(stdout: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of stdout.trim().split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1));
  }
  return m;
}

async function listDir(dir: string): Promise<string[]> {
  return (await fs.readdir(dir).catch(() => [] as string[])).sort();
}

/** Every path under `dir` whose name says temp file (`*.tmp*`, `*.partial`), relative to `dir`. */
async function tempFilesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])) {
    if (/\.tmp|\.partial$/.test(e.name)) out.push(path.relative(dir, path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)));
  }
  return out;
}

describe('backup of a live dir that is a link, not Chroma, or being written (local:)', () => {
  let root = '';
  let bin = '';
  const target = () => `local:${path.join(root, 'target')}`;
  const volumeOnDisk = (v: string) => path.join(root, 'target', v);
  const backupsOf = (v: string) => path.join(volumeOnDisk(v), '.ferry', 'backups');

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-backup-data-'));
    // tar as the backup runs it, except when a marker file says to write during the read: then GNU
    // tar's own checkpoint action appends a byte to every file of the live dir every 5 records.
    bin = path.join(root, 'bin');
    await fs.mkdir(bin);
    await fs.writeFile(path.join(bin, 'append-all'), '#!/bin/sh\nfind "$1" -type f -exec sh -c \'printf x >> "$1"\' append {} \\;\n', { mode: 0o755 });
    await fs.writeFile(path.join(bin, 'tar'), [
      '#!/bin/sh',
      `real=${which('tar')}`,
      `once=${path.join(root, 'write-once')}; always=${path.join(root, 'write-always')}`,
      'if [ "$1" = czf ] && { [ -f "$once" ] || [ -f "$always" ]; }; then',
      '  rm -f "$once"',
      `  exec "$real" "$@" --sort=name --checkpoint=5 --checkpoint-action="exec=${path.join(bin, 'append-all')} $4/$5"`,
      'fi',
      'exec "$real" "$@"',
      '',
    ].join('\n'), { mode: 0o755 });
  });
  after(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  const withWriter = { env: { PATH: '' } };
  before(() => { withWriter.env.PATH = `${bin}:${process.env.PATH}`; });

  it('a live dir that is a symlink is refused in one line; no archive is written', async () => {
    const vol = volumeOnDisk('sym');
    await sampleDbCopy(path.join(vol, 'releases', 'v1'), OLD_SPEC, 3);
    await fs.symlink('releases/v1', path.join(vol, 'chroma_db'));
    const r = await runCli(['backup', '--target', target(), '--volume', '/sym']);
    assertOneLineRefusal(r, /chroma_db is a symbolic link \(to releases\/v1\), not a directory: no backup taken .*make it the real directory/);
    assert.deepEqual((await listDir(backupsOf('sym'))).filter((f) => !f.startsWith('.')), [], 'no archive');
    assert.deepEqual(await tempFilesUnder(vol), []);
  });

  it('a live dir without chroma.sqlite3 is refused in one line: an archive of it would restore nothing', async () => {
    const vol = volumeOnDisk('empty');
    await fs.mkdir(path.join(vol, 'chroma_db'), { recursive: true });
    await fs.writeFile(path.join(vol, 'chroma_db', 'notes.txt'), 'not a database');
    const r = await runCli(['backup', '--target', target(), '--volume', '/empty']);
    assertOneLineRefusal(r, /chroma_db holds no chroma\.sqlite3 .*not a Chroma persist dir, no backup taken; check --volume and --db-dir$/);
    assert.deepEqual(await listDir(backupsOf('empty')), []);
  });

  it('a write during the first read: read again; the archive is the live dir as it is, chroma.sqlite3 included', async () => {
    const vol = volumeOnDisk('busy');
    const live = path.join(vol, 'chroma_db');
    await sampleDbCopy(live, OLD_SPEC, 3);
    const sqliteBefore = await fileSha256(path.join(live, 'chroma.sqlite3'));
    await fs.writeFile(path.join(root, 'write-once'), '');
    const r = await runCli(['backup', '--target', target(), '--volume', '/busy'], withWriter);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    await assert.rejects(fs.access(path.join(root, 'write-once')), 'the writer wrote during a read');
    assert.notEqual(await fileSha256(path.join(live, 'chroma.sqlite3')), sqliteBefore, 'the live dir changed during the first read');
    const out = kv(r.stdout);
    assert.equal(out.get('attempts'), '2');
    const archive = path.join(backupsOf('busy'), out.get('backup')!);
    const listing = (await execa('tar', ['tzf', archive])).stdout.split('\n');
    assert.ok(listing.includes('chroma_db/chroma.sqlite3'), listing.join(' '));
    const extracted = path.join(root, 'extracted-busy');
    await fs.mkdir(extracted);
    await execa('tar', ['xzf', archive, '-C', extracted]);
    assert.equal(await digestTree(path.join(extracted, 'chroma_db')), await digestTree(live), 'the archive is the live dir after the write, byte for byte');
    assert.deepEqual(await tempFilesUnder(vol), []);
  });

  it('a live dir that keeps changing: refused with the fix after 3 reads; no archive, no temp file, lock released', async () => {
    const vol = volumeOnDisk('hot');
    await sampleDbCopy(path.join(vol, 'chroma_db'), OLD_SPEC, 3);
    await fs.writeFile(path.join(root, 'write-always'), '');
    try {
      const r = await runCli(['backup', '--target', target(), '--volume', '/hot'], withWriter);
      assertOneLineRefusal(r, /chroma_db kept changing while it was read \(3 attempts; last: .*\): no backup kept; pause writes or stop the server for the backup, or run it when the server is idle$/);
    } finally {
      await fs.rm(path.join(root, 'write-always'));
    }
    assert.deepEqual(await listDir(backupsOf('hot')), []);
    assert.deepEqual(await tempFilesUnder(vol), []);
    await assert.rejects(fs.access(path.join(vol, '.ferry', 'lock')), 'lock released');
  });
});

describe('a --db-dir with a space (local:, real Chroma)', () => {
  let env: DeployEnv;
  let target = '';
  const dbDir = 'my db';
  before(async () => {
    env = await makeDeployEnv({ dbDir });
    target = `local:${path.join(env.root, 'target')}`;
  });
  after(async () => env?.stop());

  it('deploys; backups lists its backup; retention of backup and deploy prunes it', async () => {
    const backupsDir = path.join(env.volumeOnDisk, '.ferry', 'backups');
    const archives = async () => (await listDir(backupsDir)).filter((f) => f.endsWith('.tar.gz'));
    const deployed = await runCli(deployArgs(env, target, '/data', ['--db-dir', dbDir, '--keep-backups', '1']));
    assert.equal(deployed.code, 0, deployed.stderr + deployed.stdout);
    const first = deployed.json.backup.name as string;
    assert.match(first, /^my db-\d{8}T\d{6}Z\.tar\.gz$/);

    const listed = await runCli(['backups', '--target', target, '--volume', '/data', '--db-dir', dbDir, '--json']);
    assert.equal(listed.code, 0, listed.stderr + listed.stdout);
    assert.deepEqual(listed.json.map((b: { name: string }) => b.name), [first]);
    assert.equal(listed.json[0].sha256, await fileSha256(path.join(backupsDir, first)));
    const plain = await runCli(['backups', '--target', target, '--volume', '/data', '--db-dir', dbDir]);
    assert.match(plain.stdout, /^my db-\d{8}T\d{6}Z\.tar\.gz /);

    await new Promise((r) => setTimeout(r, 1100)); // backups are named by the second
    const made = await runCli(['backup', '--target', target, '--volume', '/data', '--db-dir', dbDir, '--keep-backups', '1', '--json']);
    assert.equal(made.code, 0, made.stderr + made.stdout);
    assert.deepEqual(made.json.removed, [{ name: first, reason: 'count' }]);
    const second = made.json.backup.name as string;
    assert.deepEqual(await archives(), [second]);

    await new Promise((r) => setTimeout(r, 1100));
    const again = await runCli(deployArgs(env, target, '/data', ['--db-dir', dbDir, '--keep-backups', '1']));
    assert.equal(again.code, 0, again.stderr + again.stdout);
    assert.deepEqual(again.json.backup.pruned, [second]);
    assert.deepEqual(await archives(), [again.json.backup.name]);
  });
});

describe('a full volume says so (a small tmpfs as the volume)', () => {
  let root = '';
  let mnt = '';
  let skip: string | undefined;
  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-full-'));
    mnt = path.join(root, 'target', 'vol');
    await fs.mkdir(mnt, { recursive: true });
    skip = await mountTmpfs(mnt, 32 * 1024);
    if (skip && process.env.CI === 'true' && process.getuid?.() === 0) throw new Error(`cannot mount a tmpfs under CI=true as root: ${skip}`);
    if (skip) process.stderr.write(`\n!!! SKIPPING the full-volume tests: ${skip}\n\n`);
  });
  after(async () => {
    if (!skip) unmount(mnt);
    await fs.rm(root, { recursive: true, force: true });
  });

  it('backup: "volume full: N MiB free, needed M MiB" when the volume has less room than the live dir; nothing left', async (t) => {
    if (skip) return t.skip(skip);
    const live = path.join(mnt, 'chroma_db');
    await sampleDbCopy(live, OLD_SPEC, 3);
    // Room for the lock, not for an archive as big as the live dir (about 2.2 MiB).
    const free = (await fs.statfs(mnt)).bavail * (await fs.statfs(mnt)).bsize;
    await execa('sh', ['-c', 'head -c "$1" /dev/zero > "$2"', 'fill', String(free - 1024 * 1024), path.join(mnt, 'filler')]);
    try {
      const r = await runCli(['backup', '--target', `local:${path.join(root, 'target')}`, '--volume', '/vol']);
      assertOneLineRefusal(r, /^chroma-ferry: volume full: [01] MiB free, needed 3 MiB \(.*\/vol on local:.*\); free space there and run again$/);
      assert.deepEqual(await listDir(path.join(mnt, '.ferry', 'backups')), []);
      assert.deepEqual(await tempFilesUnder(mnt), []);
      await assert.rejects(fs.access(path.join(mnt, '.ferry', 'lock')), 'lock released');
    } finally {
      await fs.rm(path.join(mnt, 'filler'), { force: true });
      await fs.rm(live, { recursive: true, force: true });
      await fs.rm(path.join(mnt, '.ferry'), { recursive: true, force: true });
    }
  });

  it('deploy: a volume that fills up during the upload says "volume full"; no temp file left on the volume', async (t) => {
    if (skip) return t.skip(skip);
    let env: DeployEnv | undefined;
    try {
      env = await makeDeployEnv({ volumeOnDisk: () => mnt });
      // Another process fills the volume just as the first chunk arrives (`--upload stream`: cat > partial).
      const bin = path.join(root, 'fill-bin');
      await fs.mkdir(bin, { recursive: true });
      await fs.writeFile(path.join(bin, 'cat'), [
        '#!/bin/sh',
        'case $(readlink "/proc/$$/fd/1") in',
        `  */incoming/*/.chunk-*.partial) head -c 1073741824 /dev/zero > ${path.join(mnt, 'filler')} 2>/dev/null ;;`,
        'esac',
        `exec ${which('cat')} "$@"`,
        '',
      ].join('\n'), { mode: 0o755 });
      const r = await runCli(deployArgs(env, `local:${path.join(root, 'target')}`, '/vol', ['--upload', 'stream']), { env: { PATH: `${bin}:${process.env.PATH}` } });
      assert.notEqual(r.code, 0, r.stdout);
      await assert.doesNotReject(fs.access(path.join(mnt, 'filler')), 'the volume was filled during the upload');
      assert.match(`${r.stderr}${r.json?.error ?? ''}`, /volume full: \d+ MiB free, needed \d+ MiB/, r.stderr + r.stdout);
      assert.doesNotMatch(`${r.stderr}${r.stdout}`, /write error|No space left|ferry_refusal/);
      assert.deepEqual(await tempFilesUnder(mnt), []);
      assert.deepEqual(await tempFilesUnder(TEST_STATE_DIR), [], 'nor in the local state dir');
      assert.ok((await listDir(env.live)).includes('chroma.sqlite3'), 'the live dir is still there');
    } finally {
      await fs.rm(path.join(mnt, 'filler'), { force: true });
      await env?.stop();
    }
  });
});
