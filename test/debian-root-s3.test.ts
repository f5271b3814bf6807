/**
 * `--upload s3` and `backups push` with the far side's own userland doing the HTTP: the test sshd
 * chroots sessions into a Debian root of the `stock` profile (the Chroma image: perl and openssl,
 * no curl, wget or python3) or the `python` one (python3, no curl or wget). The bucket is s3rver
 * on 127.0.0.1, reached over plain http and over https through a TLS proxy whose certificate a
 * test CA signed for 127.0.0.1 (the roots have no /etc/hosts); the sessions trust that CA through
 * SSL_CERT_FILE (sshd's SetEnv), this machine's SDK through NODE_EXTRA_CA_CERTS. The tool each
 * profile picks is asserted (`fetch_tool=` in the upload note, `tool` of the push), and while
 * each presigned request is in flight no process shows its signature in argv or environment.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { listCollectionCounts } from '../lib/chroma/http.ts';
import { fileSha256 } from '../testkit/tree-digest.ts';
import { debianRoot, type DebianRoot, type RootVolume } from './helpers/debian-root.ts';
import { digestTree, makeDeployEnv, OLD_SPEC, runCli, sampleDbCopy, type DeployEnv } from './helpers/deploy-env.ts';
import { canScanProcesses } from './helpers/proc-scan.ts';
import { startRestartRelay, type RestartRelay } from './helpers/restart-relay.ts';
import { assertNoSecrets, FAKE_AWS, startS3, type TestS3 } from './helpers/s3.ts';
import { startSshd, type TestSshd } from './helpers/sshd.ts';
import { makeTestCert, opensslUnavailable, startTlsProxy, type TestCert, type TlsProxy } from './helpers/tls.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** ~2.3 MB of vectors: three 1 MiB chunks, each in 256 KiB parts. */
const SOURCE = [{ name: 'vectors', count: 1500, dim: 384, space: 'l2' as const }];
const PART_ENV = { CHROMA_FERRY_S3_PART_SIZE: '256KiB' };

const EXPECTED = {
  stock: { http: 'perl', https: 'perl-openssl' },
  python: { http: 'python3', https: 'python3' },
} as const;

function sshArgs(d: TestSshd): string[] {
  return ['--ssh-key', d.keyFile, ...d.sshOptions.flatMap((o) => ['--ssh-option', o])];
}

/** No presigned request was made while some process showed its signature; at least `min` were made. */
function assertNoUrlInProcesses(s3: TestS3, method: string, min: number): void {
  const requests = s3.presigned.filter((p) => p.method === method);
  assert.ok(requests.length >= min, `${requests.length} presigned ${method} requests, want >= ${min}`);
  if (!canScanProcesses()) return;
  for (const p of requests) assert.deepEqual(p.shownBy, [], `${p.method} ${p.key}: the signature was in a process's argv or environment`);
}

for (const profile of ['stock', 'python'] as const) describe(`--upload s3 and backups push from the ${profile} profile's userland (chrooted sshd)`, () => {
  let root: DebianRoot | null = null;
  let sshd: TestSshd | null = null;
  let s3: TestS3;
  let cert: TestCert | undefined;
  let proxy: TlsProxy | undefined;
  let caVolume: RootVolume | undefined;
  let unmountProc: (() => Promise<void>) | undefined;
  let noTls: string | undefined;
  const endpoints = () => ({ http: s3.endpoint, https: `https://127.0.0.1:${proxy!.port}` });
  const cliEnv = () => ({ ...s3.env, ...PART_ENV, NODE_EXTRA_CA_CERTS: cert!.caFile });

  before(async () => {
    root = await debianRoot(profile);
    if (!root) return;
    noTls = await opensslUnavailable();
    if (noTls) {
      process.stderr.write(`\n!!! WARNING: ${noTls}: the ${profile} s3 tests are SKIPPED\n\n`);
      return;
    }
    unmountProc = await root.mountProc();
    s3 = await startS3('ferry-test', { watchProcesses: true });
    cert = await makeTestCert({ ips: ['127.0.0.1'] });
    proxy = await startTlsProxy(s3.port, cert);
    caVolume = await root.makeVolume();
    await fs.writeFile(path.join(caVolume.onDisk, 'ca.pem'), cert.ca);
    sshd = await startSshd({ chrootDirectory: root.path, extraConfig: [`SetEnv SSL_CERT_FILE=${caVolume.inside}/ca.pem`] });
  });
  after(async () => {
    await sshd?.stop();
    await proxy?.stop();
    await s3?.stop();
    await cert?.remove();
    await caVolume?.remove();
    await unmountProc?.();
  });
  const ready = (t: TestContext): boolean => {
    if (!root || !sshd) t.skip('no Debian root, sshd or openssl on this machine (see the warning above)');
    return !!(root && sshd);
  };

  it(`deploy --upload s3 over https: the remote fetches every chunk with ${EXPECTED[profile].https}; verified, objects deleted, no URL anywhere`, async (t) => {
    if (!ready(t)) return;
    const r0 = root!;
    const d = sshd!;
    const vol = await r0.makeVolume();
    let env: DeployEnv | undefined;
    let relay: RestartRelay | undefined;
    try {
      env = await makeDeployEnv({ volumeOnDisk: () => vol.onDisk, source: SOURCE });
      relay = await startRestartRelay(r0, env.restartCmd);
      s3.reset();
      const r = await runCli(['deploy', '--source', env.source, '--target', d.target, '--volume', vol.inside, ...sshArgs(d),
        '--upload', 's3', '--s3-bucket', s3.bucket, '--s3-endpoint', endpoints().https, '--chunk-size', '1MiB', '--upload-concurrency', '2',
        '--restart-cmd', relay.insideCmd, '--health-url', env.url, '--health-timeout', '30s', '--yes', '--json'], { env: cliEnv() });
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const s = r.json;
      assert.equal(s.verified, true);
      assert.ok(s.archive.chunks >= 2, `want several chunks, got ${s.archive.chunks}`);
      assert.equal(s.upload.chunksSent, s.archive.chunks);
      const note: string = s.steps.find((x: { name: string }) => x.name === 'upload').note;
      assert.match(note, new RegExp(`fetch_tool=${EXPECTED[profile].https}$`));
      assert.deepEqual((await listCollectionCounts(env.url)).map((c) => [c.name, c.count]), [['vectors', 1500]]);
      assert.equal(s3.events.filter((e) => e.name.startsWith('ObjectCreated')).length, s.archive.chunks);
      assert.deepEqual(await s3.listKeys(), [], 'objects deleted after the verified deploy');
      assertNoUrlInProcesses(s3, 'GET', s.archive.chunks);
      assertNoSecrets(s3, r);
    } finally {
      await relay?.stop();
      await env?.stop();
      await vol.remove();
    }
  });

  it(`backups push over http (${EXPECTED[profile].http}) and https (${EXPECTED[profile].https}): the object is the archive (HeadObject, sha256 read back)`, async (t) => {
    if (!ready(t)) return;
    const r0 = root!;
    const d = sshd!;
    const vol = await r0.makeVolume();
    const client = new S3Client({
      endpoint: s3.endpoint, forcePathStyle: true, region: FAKE_AWS.AWS_REGION,
      credentials: { accessKeyId: FAKE_AWS.AWS_ACCESS_KEY_ID, secretAccessKey: FAKE_AWS.AWS_SECRET_ACCESS_KEY },
    });
    try {
      await sampleDbCopy(path.join(vol.onDisk, 'chroma_db'), OLD_SPEC);
      const target = ['--target', d.target, '--volume', vol.inside, ...sshArgs(d)];
      const made = await runCli(['backup', ...target, '--json']);
      assert.equal(made.code, 0, made.stderr + made.stdout);
      const backups = (await fs.readdir(path.join(vol.onDisk, '.ferry', 'backups'))).filter((f) => f.endsWith('.tar.gz'));
      assert.equal(backups.length, 1);
      const name = backups[0]!;
      const onVolume = path.join(vol.onDisk, '.ferry', 'backups', name);
      const want = { bytes: (await fs.stat(onVolume)).size, sha256: await fileSha256(onVolume) };
      const volumeBefore = await digestTree(vol.onDisk);

      for (const scheme of ['http', 'https'] as const) {
        s3.reset();
        const prefix = `${profile}-${scheme}`;
        const r = await runCli(['backups', 'push', 'latest', ...target, '--to', `s3://${s3.bucket}/${prefix}`, '--s3-endpoint', endpoints()[scheme], '--json'], { env: cliEnv() });
        assert.equal(r.code, 0, r.stderr + r.stdout);
        assert.equal(r.json.tool, EXPECTED[profile][scheme]);
        assert.deepEqual([r.json.name, r.json.bytes, r.json.sha256], [name, want.bytes, want.sha256]);
        const key = `${prefix}/${name}`;
        assert.equal(r.json.object, `s3://${s3.bucket}/${key}`);
        const head = await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
        assert.equal(head.ContentLength, want.bytes);
        const body = await (await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }))).Body!.transformToByteArray();
        assert.equal(crypto.createHash('sha256').update(body).digest('hex'), want.sha256, 'the object\'s bytes are the archive\'s');
        assertNoUrlInProcesses(s3, 'PUT', 1);
        assertNoSecrets(s3, r);
      }
      assert.equal(await digestTree(vol.onDisk), volumeBefore, 'push only reads the volume');
    } finally {
      client.destroy();
      await vol.remove();
    }
  });
});
