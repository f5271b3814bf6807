/**
 * Day-2 backups: `chroma-ferry backup` (verified archive now, under the volume lock, retention by
 * count and by age), `backups pull` (sha256-checked download) and `backups push` (the remote host
 * PUTs the archive to s3rver through a presigned URL on stdin; verified from here). Real Chroma
 * data served by a real server, `local:` and `ssh://` (real sshd) targets, the CLI as a child.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { execa } from 'execa';
import { selectBackupsToRemove } from '../lib/backups/retention.ts';
import { LocalHost } from '../lib/hosts/local.ts';
import { backupName, remoteLayout, utcStamp } from '../lib/remote/layout.ts';
import { HTTP_TOOLS, putFileToUrlScript } from '../lib/remote/http-transfer.ts';
import { renderShCommand } from '../lib/remote/shell.ts';
import { createS3Client, presignPut } from '../lib/transfer/s3.ts';
import { fileSha256 } from '../testkit/tree-digest.ts';
import { tryVolumeLock } from '../lib/volume/lock.ts';
import { assertOneLineRefusal, CLI, digestTree, makeDeployEnv, runCli, TEST_STATE_DIR, type DeployEnv } from './helpers/deploy-env.ts';
import { APP, makeFakeFly, TOKEN, type FakeFly } from './helpers/fake-fly.ts';
import { assertNoSecrets, FAKE_AWS, startS3, type TestS3 } from './helpers/s3.ts';
import { startSshd, type TestSshd } from './helpers/sshd.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const DAY = 24 * 60 * 60 * 1000;

/** key=value lines of a plain-output run; `removed` collects every removed= line. */
function kvLines(stdout: string): { kv: Map<string, string>; removed: string[] } {
  const kv = new Map<string, string>();
  const removed: string[] = [];
  for (const line of stdout.trim().split('\n')) {
    const i = line.indexOf('=');
    if (i <= 0) continue;
    if (line.startsWith('removed=')) removed.push(line.slice(i + 1));
    else kv.set(line.slice(0, i), line.slice(i + 1));
  }
  return { kv, removed };
}

async function listDir(dir: string): Promise<string[]> {
  return (await fs.readdir(dir).catch(() => [] as string[])).sort();
}

/** Forge a backup archive (and its .sha256) whose name says it was taken `ageMs` ago. */
async function forgeBackup(backupsDir: string, ageMs: number): Promise<string> {
  const name = backupName('chroma_db', utcStamp(new Date(Date.now() - ageMs)));
  await fs.mkdir(backupsDir, { recursive: true });
  await fs.writeFile(path.join(backupsDir, name), `forged ${name}`);
  const sum = crypto.createHash('sha256').update(`forged ${name}`).digest('hex');
  await fs.writeFile(path.join(backupsDir, `${name}.sha256`), `${sum}  ${name}\n`);
  return name;
}

describe('retention selection (pure)', () => {
  const now = Date.UTC(2026, 10, 24, 12, 0, 0);
  const at = (ms: number) => backupName('chroma_db', utcStamp(new Date(now - ms)));
  const fresh = at(0);
  const names = [fresh, at(1 * DAY), at(3 * DAY), at(10 * DAY)];

  it('by count keeps the new one plus the N-1 newest others; by age removes only the older ones', () => {
    assert.deepEqual(selectBackupsToRemove(names, fresh, { keepCount: 2 }, now), [
      { name: names[2], reason: 'count' }, { name: names[3], reason: 'count' },
    ]);
    assert.deepEqual(selectBackupsToRemove(names, fresh, { keepDays: 2 }, now), [
      { name: names[2], reason: 'age' }, { name: names[3], reason: 'age' },
    ]);
    assert.deepEqual(selectBackupsToRemove(names, fresh, { keepCount: 3, keepDays: 2 }, now).map((r) => r.name), [names[2], names[3]]);
    assert.deepEqual(selectBackupsToRemove(names, fresh, {}, now), []);
  });

  it('never removes the protected (just made) backup, also with --keep-days 0 and a newer forged name', () => {
    const future = backupName('chroma_db', utcStamp(new Date(now + DAY)));
    const all = [future, ...names];
    for (const policy of [{ keepDays: 0 }, { keepCount: 1 }, { keepCount: 1, keepDays: 0 }]) {
      const removed = selectBackupsToRemove(all, fresh, policy, now).map((r) => r.name);
      assert.ok(!removed.includes(fresh), JSON.stringify(policy));
    }
    assert.deepEqual(selectBackupsToRemove(all, fresh, { keepCount: 1 }, now).map((r) => r.name), [future, ...names.slice(1)]);
  });
});

describe('the presigned PUT (unit)', () => {
  it('expires within 5 minutes, carries no empty-body checksum, and never reaches the remote command line', async () => {
    const client = createS3Client({ endpoint: undefined, region: 'us-east-1' }, { presignsPut: true });
    const prev = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_ACCESS_KEY_ID = FAKE_AWS.AWS_ACCESS_KEY_ID;
    process.env.AWS_SECRET_ACCESS_KEY = FAKE_AWS.AWS_SECRET_ACCESS_KEY;
    try {
      const url = new URL(await presignPut(client, 'b', 'backups/chroma_db-20260101T000000Z.tar.gz', 300));
      assert.equal(url.searchParams.get('X-Amz-Expires'), '300');
      assert.match(url.searchParams.get('X-Amz-Signature') ?? '', /^[0-9a-f]{64}$/);
      assert.equal(url.searchParams.get('x-amz-checksum-crc32'), null, 'a checksum of an empty body would make S3 reject the upload');
    } finally {
      if (prev.id === undefined) delete process.env.AWS_ACCESS_KEY_ID; else process.env.AWS_ACCESS_KEY_ID = prev.id;
      if (prev.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY; else process.env.AWS_SECRET_ACCESS_KEY = prev.secret;
      client.destroy();
    }
    for (const tool of HTTP_TOOLS) {
      const cmd = renderShCommand(putFileToUrlScript('/data/.ferry/backups/x.tar.gz', tool));
      assert.ok(!cmd.includes('X-Amz'), cmd);
    }
  });
});

describe('backup, pull, push, retention (local:)', () => {
  let env: DeployEnv;
  let target: string;
  let s3: TestS3;
  let backupsDir: string;
  const vol = (args: string[]) => [...args, '--target', target, '--volume', '/data'];

  before(async () => {
    env = await makeDeployEnv();
    target = `local:${path.join(env.root, 'target')}`;
    backupsDir = path.join(env.volumeOnDisk, '.ferry', 'backups');
    s3 = await startS3();
  });
  after(async () => {
    await s3?.stop();
    await env?.stop();
  });

  it('backup, then backups pull: the archive extracts to the live dir as it was, byte for byte', async () => {
    const liveBefore = await digestTree(env.live);
    const r = await runCli(vol(['backup']));
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(await digestTree(env.live), liveBefore, 'the live dir did not change during the backup (else the comparison means nothing)');
    const { kv } = kvLines(r.stdout);
    const name = kv.get('backup')!;
    assert.match(name, /^chroma_db-\d{8}T\d{6}Z\.tar\.gz$/);
    const onVolume = path.join(backupsDir, name);
    assert.equal(kv.get('sha256'), await fileSha256(onVolume));
    assert.equal(Number(kv.get('bytes')), (await fs.stat(onVolume)).size);
    assert.ok(Number(kv.get('entries')) > 1);
    await assert.rejects(fs.access(path.join(env.volumeOnDisk, '.ferry', 'lock')), 'the lock is released');
    assert.deepEqual((await listDir(backupsDir)).filter((f) => f.startsWith('.')), [], 'no partial file left');

    const to = path.join(env.root, 'pulled', 'new dir');
    const pulled = await runCli(vol(['backups', 'pull', name, '--to', to, '--json']));
    assert.equal(pulled.code, 0, pulled.stderr + pulled.stdout);
    assert.equal(pulled.json.status, 'downloaded');
    const file = path.join(to, name);
    assert.equal(pulled.json.file, file);
    assert.equal(await fileSha256(file), kv.get('sha256'));
    assert.deepEqual(await listDir(to), [name], 'no temp file left next to it');
    const extracted = path.join(env.root, 'extracted');
    await fs.mkdir(extracted);
    await execa('tar', ['xzf', file, '-C', extracted]);
    assert.equal(await digestTree(path.join(extracted, 'chroma_db')), liveBefore);

    // `latest` is the same archive: identical file there, nothing downloaded.
    const again = await runCli(vol(['backups', 'pull', 'latest', '--to', to]));
    assert.equal(again.code, 0, again.stderr);
    assert.equal(kvLines(again.stdout).kv.get('status'), 'already-present');
    // A different file of that name is never overwritten.
    await fs.appendFile(file, 'x');
    const changed = await fileSha256(file);
    assertOneLineRefusal(await runCli(vol(['backups', 'pull', name, '--to', to])), /already exists and differs .*not overwritten/);
    assert.equal(await fileSha256(file), changed);
  });

  it('pull refuses an archive that no longer matches the sha256 recorded when it was made', async () => {
    const name = kvLines((await runCli(vol(['backup']))).stdout).kv.get('backup')!;
    const onVolume = path.join(backupsDir, name);
    const original = await fs.readFile(onVolume);
    await fs.writeFile(onVolume, Buffer.concat([original, Buffer.from('rot')]));
    try {
      const to = path.join(env.root, 'pulled-rotten');
      const r = await runCli(vol(['backups', 'pull', name, '--to', to]));
      assert.equal(r.code, 1, r.stderr + r.stdout);
      assert.match(r.stderr, /no longer matches the sha256 recorded/);
      assert.deepEqual(await listDir(to), []);
    } finally {
      await fs.writeFile(onVolume, original);
    }
  });

  it('retention by age and by count on forged old archives; the new backup is always kept', async () => {
    await fs.rm(backupsDir, { recursive: true, force: true });
    const d10 = await forgeBackup(backupsDir, 10 * DAY);
    const d5 = await forgeBackup(backupsDir, 5 * DAY);
    const d2 = await forgeBackup(backupsDir, 2 * DAY);
    const h1 = await forgeBackup(backupsDir, 60 * 60 * 1000);
    const foreign = ['other_db-20200101T000000Z.tar.gz', 'notes.txt'];
    for (const f of foreign) await fs.writeFile(path.join(backupsDir, f), 'not ours');
    const archives = async () => (await listDir(backupsDir)).filter((f) => f.startsWith('chroma_db-') && f.endsWith('.tar.gz'));

    const byAge = await runCli(vol(['backup', '--keep-days', '3']));
    assert.equal(byAge.code, 0, byAge.stderr + byAge.stdout);
    const a = kvLines(byAge.stdout);
    assert.deepEqual(a.removed.sort(), [d10, d5].sort());
    const new1 = a.kv.get('backup')!;
    assert.deepEqual(await archives(), [d2, h1, new1].sort());
    assert.ok(!(await listDir(backupsDir)).includes(`${d10}.sha256`), 'the removed archive\'s .sha256 goes with it');

    const byCount = await runCli(vol(['backup', '--keep-backups', '2', '--json']));
    assert.equal(byCount.code, 0, byCount.stderr + byCount.stdout);
    const new2 = byCount.json.backup.name as string;
    assert.deepEqual(byCount.json.removed, [{ name: h1, reason: 'count' }, { name: d2, reason: 'count' }]);
    assert.deepEqual(await archives(), [new1, new2].sort());

    const zero = await runCli(vol(['backup', '--keep-days', '0', '--keep-backups', '1']));
    assert.equal(zero.code, 0, zero.stderr + zero.stdout);
    const z = kvLines(zero.stdout);
    assert.deepEqual(z.removed.sort(), [new1, new2].sort());
    assert.deepEqual(await archives(), [z.kv.get('backup')]);
    assert.equal(await fileSha256(path.join(backupsDir, z.kv.get('backup')!)), z.kv.get('sha256'), 'the newest is there, intact');
    for (const f of foreign) assert.equal(await fs.readFile(path.join(backupsDir, f), 'utf8'), 'not ours', `${f} untouched`);
  });

  it('backups push: the remote uploads through a presigned URL; the object is the archive, no secret printed', async () => {
    const made = kvLines((await runCli(vol(['backup']))).stdout).kv;
    const name = made.get('backup')!;
    const r = await runCli(vol(['backups', 'push', 'latest', '--to', `s3://${s3.bucket}/day2/backups`, '--s3-endpoint', s3.endpoint]), { env: s3.env });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const { kv } = kvLines(r.stdout);
    assert.equal(kv.get('pushed'), name);
    assert.equal(kv.get('object'), `s3://${s3.bucket}/day2/backups/${name}`);
    assert.deepEqual(await s3.listKeys('day2/'), [`day2/backups/${name}`]);
    const client = new S3Client({
      endpoint: s3.endpoint, forcePathStyle: true, region: FAKE_AWS.AWS_REGION,
      credentials: { accessKeyId: FAKE_AWS.AWS_ACCESS_KEY_ID, secretAccessKey: FAKE_AWS.AWS_SECRET_ACCESS_KEY },
    });
    try {
      const obj = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: `day2/backups/${name}` }));
      const sha = crypto.createHash('sha256').update(await obj.Body!.transformToByteArray()).digest('hex');
      assert.equal(sha, await fileSha256(path.join(backupsDir, name)), 'the object\'s sha256 is the archive\'s');
      assert.equal(sha, kv.get('sha256'));
    } finally {
      client.destroy();
    }
    const json = await runCli(vol(['backups', 'push', name, '--to', `s3://${s3.bucket}`, '--s3-endpoint', s3.endpoint, '--json']), { env: s3.env });
    assert.equal(json.code, 0, json.stderr + json.stdout);
    assert.equal(json.json.object, `s3://${s3.bucket}/${name}`);
    const noBucket = await runCli(vol(['backups', 'push', name, '--to', 's3://no-such-bucket/x', '--s3-endpoint', s3.endpoint]), { env: s3.env });
    assertOneLineRefusal(noBucket, /bucket no-such-bucket .* is not usable: not found/);
    assertNoSecrets(s3, r, json, noBucket);
  });

  it('backups push with only a GNU wget on the remote (no curl): PUT --body-file, same verification', async (t) => {
    const name = kvLines((await runCli(vol(['backup']))).stdout).kv.get('backup')!;
    // The commands push runs on the remote, and nothing else: curl is not on this PATH.
    const bin = path.join(env.root, 'wget-only-bin');
    await fs.mkdir(bin, { recursive: true });
    for (const tool of ['sh', 'cat', 'wc', 'sha256sum', 'grep', 'wget']) {
      const found = (await execa('sh', ['-c', `command -v ${tool}`], { reject: false })).stdout.trim();
      if (!found.startsWith('/')) {
        process.stderr.write(`\n!!! WARNING: ${tool} is not installed: the wget path of backups push is SKIPPED (curl is tested above)\n\n`);
        t.skip(`${tool} is not installed`);
        return;
      }
      await fs.symlink(found, path.join(bin, tool)).catch(() => undefined);
    }
    const r = await runCli(vol(['backups', 'push', name, '--to', `s3://${s3.bucket}/by-wget/`, '--s3-endpoint', s3.endpoint, '--json']), { env: { ...s3.env, PATH: bin } });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.tool, 'wget');
    assert.equal(r.json.sha256, await fileSha256(path.join(backupsDir, name)));
    assert.deepEqual(await s3.listKeys('by-wget/'), [`by-wget/${name}`]);
    assertNoSecrets(s3, r);
  });

  it('bad names and bad --to are refused in one line; no live dir: refused, nothing written', async () => {
    for (const bad of ['../chroma_db-20260101T000000Z.tar.gz', 'x/chroma_db-20260101T000000Z.tar.gz', '..', 'chroma_db.tar.gz', 'other-20260101T000000Z.tar.gz', 'a\nb']) {
      assertOneLineRefusal(await runCli(vol(['backups', 'pull', bad, '--to', path.join(env.root, 'bad')])), /^chroma-ferry: backup name .*not a backup of chroma_db/);
      assertOneLineRefusal(await runCli(vol(['backups', 'push', bad, '--to', `s3://${s3.bucket}/x`, '--s3-endpoint', s3.endpoint]), { env: s3.env }), /backup name .*not a backup of chroma_db/);
    }
    assert.deepEqual(await listDir(path.join(env.root, 'bad')), []);
    assertOneLineRefusal(await runCli(vol(['backups', 'push', 'latest', '--to', '/tmp/x'])), /--to .*expected s3:\/\/BUCKET\/PREFIX/);
    assertOneLineRefusal(await runCli(vol(['backups', 'pull', 'latest'])), /missing --to/);
    const volumeBefore = await digestTree(env.volumeOnDisk);
    assertOneLineRefusal(await runCli(vol(['backup', '--db-dir', 'not_there'])), /no live Chroma dir at .*not_there.*nothing to back up/);
    assert.equal(await digestTree(env.volumeOnDisk), volumeBefore);
  });

  it('refused while a deploy holds the lock; releases its own lock after a failure and after Ctrl-C', async () => {
    const host = new LocalHost(path.join(env.root, 'target'));
    const layout = remoteLayout(host.resolveVolume('/data'), 'chroma_db');
    const lockDir = path.join(env.volumeOnDisk, '.ferry', 'lock');
    const held = await tryVolumeLock(host, layout, 'deployrun01', 'deploy');
    assert.equal(held.acquired, true);
    const owner = await fs.readFile(path.join(lockDir, 'owner.json'), 'utf8');
    const volumeBefore = await digestTree(env.volumeOnDisk);
    assertOneLineRefusal(await runCli(vol(['backup'])), /holds the deploy lock .*\(deploy by \S+@\S+, pid \d+, since .*\): no backup taken.*chroma-ferry unlock --target/);
    assert.equal(await digestTree(env.volumeOnDisk), volumeBefore, 'nothing changed');
    assert.equal(await fs.readFile(path.join(lockDir, 'owner.json'), 'utf8'), owner, 'the deploy still holds its lock');
    await fs.rm(lockDir, { recursive: true });

    // A failure inside the lock (the backups dir is a file): exit 1, lock released.
    await fs.rm(backupsDir, { recursive: true, force: true });
    await fs.writeFile(backupsDir, 'in the way');
    try {
      const failed = await runCli(vol(['backup']));
      assert.equal(failed.code, 1, failed.stderr + failed.stdout);
      await assert.rejects(fs.access(lockDir), 'lock released after a failure');
    } finally {
      await fs.rm(backupsDir, { force: true });
    }

    // Ctrl-C while tar runs (a tar that hangs on czf, its output detached so that the cancelled
    // script ends at once): exit 130, no partial archive, lock released.
    const slowBin = path.join(env.root, 'slow-bin');
    await fs.mkdir(slowBin, { recursive: true });
    const realTar = (await execa('sh', ['-c', 'command -v tar'])).stdout.trim();
    await fs.writeFile(path.join(slowBin, 'tar'), `#!/bin/sh\nif [ "$1" = czf ]; then : > "$2"; exec sleep 20 </dev/null >/dev/null 2>&1; fi\nexec ${realTar} "$@"\n`, { mode: 0o755 });
    const child = execa(process.execPath, [CLI, ...vol(['backup'])], {
      reject: false, stdin: 'ignore', env: { CI: 'true', CHROMA_FERRY_STATE_DIR: TEST_STATE_DIR, PATH: `${slowBin}:${process.env.PATH}` },
    });
    const deadline = Date.now() + 30_000;
    while (!(await listDir(backupsDir)).some((f) => f.endsWith('.partial'))) {
      assert.ok(Date.now() < deadline, 'the backup never started');
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGINT');
    const r = await child;
    assert.equal(r.exitCode, 130, `${r.stdout}\n${r.stderr}`);
    assert.match(String(r.stderr), /interrupted: no backup kept; the lock is released/);
    await assert.rejects(fs.access(lockDir), 'lock released after Ctrl-C');
    assert.deepEqual(await listDir(backupsDir), [], 'no partial or finished archive left');
  });
});

describe('backup, pull and push on fly: (the strict fake flyctl)', () => {
  let env: DeployEnv;
  let fly: FakeFly;
  let s3: TestS3;
  before(async () => {
    env = await makeDeployEnv();
    fly = await makeFakeFly(env);
    s3 = await startS3();
  });
  after(async () => {
    await s3?.stop();
    await env?.stop();
    await fs.rm(fly.dir, { recursive: true, force: true });
  });

  it('backup, then pull latest through fly sftp get and push through fly ssh console; no token printed', async () => {
    const flyTarget = ['--target', `fly:${APP}`, '--volume', env.volumeOnDisk];
    const liveBefore = await digestTree(env.live);
    const made = await runCli(['backup', ...flyTarget, '--keep-backups', '1'], { env: fly.env });
    assert.equal(made.code, 0, made.stderr + made.stdout);
    const { kv } = kvLines(made.stdout);
    const to = path.join(env.root, 'from-fly');
    const pulled = await runCli(['backups', 'pull', 'latest', ...flyTarget, '--to', to], { env: fly.env });
    assert.equal(pulled.code, 0, pulled.stderr + pulled.stdout);
    const file = path.join(to, kv.get('backup')!);
    assert.equal(await fileSha256(file), kv.get('sha256'));
    await execa('tar', ['xzf', file, '-C', to]);
    assert.equal(await digestTree(path.join(to, 'chroma_db')), liveBefore);
    const pushed = await runCli(['backups', 'push', 'latest', ...flyTarget, '--to', `s3://${s3.bucket}/fly`, '--s3-endpoint', s3.endpoint], { env: { ...fly.env, ...s3.env } });
    assert.equal(pushed.code, 0, pushed.stderr + pushed.stdout);
    assert.equal(kvLines(pushed.stdout).kv.get('sha256'), kv.get('sha256'));
    assert.deepEqual(await s3.listKeys('fly/'), [`fly/${kv.get('backup')}`]);
    const calls = await fly.calls();
    assert.ok(calls.some((c) => c[0] === 'sftp' && c[1] === 'get'), 'the pull went through fly sftp get');
    for (const c of calls) assert.ok(!c.some((w) => /X-Amz-Signature|https?:\/\//.test(w)), `a URL on a fly command line: ${JSON.stringify(c)}`);
    for (const r of [made, pulled, pushed]) assert.ok(!`${r.stdout}${r.stderr}`.includes(TOKEN), 'the Fly token was printed');
    assertNoSecrets(s3, pushed);
  });
});

const sshd = await startSshd();
const skip = sshd ? false : 'openssh-server is not installed (see the warning above)';

describe('backup and pull over ssh://', { skip }, () => {
  const d = sshd as TestSshd;
  let env: DeployEnv;
  before(async () => { env = await makeDeployEnv({ volumeOnDisk: (root) => path.join(root, 'vol with space', "it's") }); });
  after(async () => {
    await env?.stop();
    await d?.stop();
  });

  it('backup then pull latest: sha256 equal on both ends, extracts to the live dir byte for byte', async () => {
    const ssh = ['--target', d.target, '--volume', env.volumeOnDisk, '--ssh-key', d.keyFile, ...d.sshOptions.flatMap((o) => ['--ssh-option', o])];
    const liveBefore = await digestTree(env.live);
    const made = await runCli(['backup', ...ssh, '--json']);
    assert.equal(made.code, 0, made.stderr + made.stdout);
    const to = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-pull-'));
    try {
      const pulled = await runCli(['backups', 'pull', 'latest', '--to', to, ...ssh]);
      assert.equal(pulled.code, 0, pulled.stderr + pulled.stdout);
      const { kv } = kvLines(pulled.stdout);
      assert.equal(kv.get('pulled'), made.json.backup.name);
      assert.equal(kv.get('sha256'), made.json.backup.sha256);
      assert.equal(await fileSha256(kv.get('file')!), await fileSha256(path.join(env.volumeOnDisk, '.ferry', 'backups', made.json.backup.name)));
      await execa('tar', ['xzf', kv.get('file')!, '-C', to]);
      assert.equal(await digestTree(path.join(to, 'chroma_db')), liveBefore);
    } finally {
      await fs.rm(to, { recursive: true, force: true });
    }
  });
});
