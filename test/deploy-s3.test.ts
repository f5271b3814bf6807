/**
 * `--upload s3`: chunks go through a bucket (s3rver in-process on 127.0.0.1) and the remote
 * fetches each from a presigned URL passed on stdin. Full deploys through local: and ssh://,
 * multipart (CHROMA_FERRY_S3_PART_SIZE=256KiB with 1MiB chunks), parallel uploads, resume after
 * an interrupted upload, objects deleted after success and kept after a failure, no secret in
 * any output, an unusable bucket refused before anything changes. s3rver does not verify v4
 * signatures, so the presigned URL's shape and its redaction are unit-tested here.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { S3Client } from '@aws-sdk/client-s3';
import { servedContentDigest } from '../testkit/content-digest.ts';
import { listCollectionCounts } from '../lib/chroma/http.ts';
import { UserError } from '../lib/common/errors.ts';
import { LocalHost } from '../lib/hosts/local.ts';
import { fetchUrlScript, HTTP_TOOLS, urlStdin } from '../lib/remote/http-transfer.ts';
import { redact } from '../lib/report/secrets.ts';
import { renderShCommand } from '../lib/remote/shell.ts';
import { presignGet } from '../lib/transfer/s3.ts';
import { parseS3Flags } from '../lib/transfer/s3-flags.ts';
import { createUploader } from '../lib/transfer/index.ts';
import { contentDigestOfDir, deployArgs, digestTree, makeDeployEnv, runCli, type DeployEnv } from './helpers/deploy-env.ts';
import { assertNoSecrets, FAKE_AWS, startS3, type TestS3 } from './helpers/s3.ts';
import { startSshd, type TestSshd } from './helpers/sshd.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'; // keep the test log clean

const BIG = [{ name: 'vectors', count: 3000, dim: 768, space: 'l2' as const }];
const PART_ENV = { CHROMA_FERRY_S3_PART_SIZE: '256KiB' };

function s3Args(s3: TestS3, extra: string[] = []): string[] {
  return ['--upload', 's3', '--s3-bucket', s3.bucket, '--s3-endpoint', s3.endpoint, '--chunk-size', '1MiB', ...extra];
}

/** True when at least two objects had write requests in flight at the same time. */
function overlappingUploads(s3: TestS3): boolean {
  const spans = [...s3.writeSpans.values()].sort((a, b) => a.start - b.start);
  for (let i = 1; i < spans.length; i++) if (spans[i]!.start < spans[i - 1]!.end) return true;
  return false;
}

describe('s3 unit', () => {
  it('a presigned GET URL expires within 15 minutes, carries a signature, and redact() hides it', async () => {
    const client = new S3Client({
      endpoint: 'http://127.0.0.1:9', region: 'auto', forcePathStyle: true,
      credentials: { accessKeyId: FAKE_AWS.AWS_ACCESS_KEY_ID, secretAccessKey: FAKE_AWS.AWS_SECRET_ACCESS_KEY },
    });
    const url = await presignGet(client, 'b', 'chroma-ferry/0123456789abcdef/chunk-000000');
    client.destroy();
    const u = new URL(url);
    const expires = Number(u.searchParams.get('X-Amz-Expires'));
    assert.ok(expires > 0 && expires <= 900, `X-Amz-Expires=${expires}`);
    assert.match(u.searchParams.get('X-Amz-Signature') ?? '', /^[0-9a-f]{64}$/);
    const line = `curl failed for ${url}: 403`;
    assert.ok(!redact(line).includes('X-Amz-Signature'), 'the registered URL is replaced whole');
    assert.ok(!redact(line).includes(u.searchParams.get('X-Amz-Signature')!));
    // A signed URL never registered (e.g. echoed back by a server) loses its signature too.
    const other = url.replace(/X-Amz-Signature=[0-9a-f]+/, `X-Amz-Signature=${'ab'.repeat(32)}`);
    assert.ok(!redact(other).includes('ab'.repeat(32)));
    assert.ok(!redact(other).includes('X-Amz-Credential=AKIA'), 'the credential scope is hidden too');
  });

  it('the fetch command carries no URL: it goes on stdin', () => {
    const url = 'https://b.example/k?X-Amz-Signature=deadbeef';
    for (const tool of HTTP_TOOLS) {
      const cmd = renderShCommand(fetchUrlScript('/v/.chunk-000000.partial', tool));
      assert.ok(!cmd.includes('b.example') && !cmd.includes('X-Amz'), cmd);
      assert.ok(urlStdin(tool, url).includes(url));
    }
    assert.equal(urlStdin('curl', 'http://x/"a\\b'), 'url = "http://x/\\"a\\\\b"\n');
  });

  it('--upload s3 without --s3-bucket, and s3 flags without --upload s3, are refused', async () => {
    assert.throws(() => parseS3Flags('s3', {}, {}), (e) => e instanceof UserError && /--s3-bucket/.test(e.message));
    assert.throws(() => parseS3Flags('sftp', { s3Bucket: 'b' }, {}), UserError);
    assert.throws(() => parseS3Flags('s3', { s3Bucket: 'b1', s3Endpoint: 'ftp://x' }, {}), UserError);
    await assert.rejects(createUploader('s3', new LocalHost('/tmp')), UserError);
    const o = parseS3Flags('s3', { s3Bucket: 'b1', s3Prefix: 'p' }, { AWS_REGION: 'eu-west-1', CHROMA_FERRY_S3_PART_SIZE: '1MiB' });
    assert.deepEqual([o?.prefix, o?.region, o?.partSize], ['p/', 'eu-west-1', 1024 * 1024]);
    assert.equal(parseS3Flags('s3', { s3Bucket: 'b1' }, {})?.region, 'auto');
  });

  it('the CLI refuses --upload s3 without --s3-bucket: one line, exit 2', async () => {
    const r = await runCli(['deploy', '--source', '/nonexistent-but-checked-later', '--target', 'local:/tmp', '--upload', 's3', '--yes']);
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  });
});

describe('deploy with --upload s3 to local:', () => {
  let s3: TestS3;
  let env: DeployEnv;
  let target: string;
  before(async () => {
    s3 = await startS3();
    env = await makeDeployEnv({ source: BIG });
    target = `local:${path.join(env.root, 'target')}`;
  });
  after(async () => {
    await env?.stop();
    await s3?.stop();
  });

  it('deploys through the bucket: multipart, parallel, verified, served content equal, objects deleted, no secrets', async () => {
    const sourceContent = await contentDigestOfDir(env.source);
    const r = await runCli(deployArgs(env, target, '/data', s3Args(s3, ['--upload-concurrency', '3'])), { env: { ...s3.env, ...PART_ENV } });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const s = r.json;
    assert.equal(s.ok, true);
    assert.equal(s.verified, true);
    assert.equal(s.upload.method, 's3');
    assert.ok(s.archive.chunks >= 4, `want several chunks, got ${s.archive.chunks}`);
    assert.equal(s.upload.chunksSent, s.archive.chunks);
    assert.deepEqual((await listCollectionCounts(env.url)).map((c) => [c.name, c.count]), [['vectors', 3000]]);
    assert.equal(await servedContentDigest(env.url), sourceContent);

    const prefix = `chroma-ferry/${s.deployId}/`;
    const created = s3.events.filter((e) => e.name.startsWith('ObjectCreated'));
    assert.equal(created.length, s.archive.chunks, 'one object per chunk');
    assert.ok(created.every((e) => e.key.startsWith(prefix)));
    // 1MiB chunks in 256KiB parts: every full chunk is a multipart upload (complete = POST).
    assert.ok(created.filter((e) => e.name === 'ObjectCreated:Post').length >= s.archive.chunks - 1, JSON.stringify(created));
    assert.ok([...s3.writeSpans.values()].some((x) => x.requests >= 4), 'several part requests for one object');
    assert.ok(overlappingUploads(s3), 'chunks uploaded in parallel');
    assert.match(s.steps.find((x: { name: string }) => x.name === 'upload').note, /objects uploaded/);
    assert.deepEqual(await s3.listKeys(), [], 'objects deleted after a verified deploy');
    assertNoSecrets(s3, r);
  });

  it('after a failed fetch the objects are kept (noted, no URL); the re-run uploads none again and then deletes them', async () => {
    s3.reset();
    // A "curl" that fails and echoes its stdin (the config holding the presigned URL) to stderr.
    const shim = path.join(env.root, 'shim');
    await fs.mkdir(shim, { recursive: true });
    await fs.writeFile(path.join(shim, 'curl'), '#!/bin/sh\necho "curl: (22) failed for:" >&2\ncat >&2\nexit 22\n', { mode: 0o755 });
    const volBefore = await digestTree(env.live);
    const failed = await runCli(
      deployArgs(env, target, '/data', s3Args(s3, ['--upload-concurrency', '2'])),
      { env: { ...s3.env, ...PART_ENV, PATH: `${shim}:${process.env.PATH}` } },
    );
    assert.equal(failed.code, 1, failed.stderr + failed.stdout);
    const f = failed.json;
    assert.equal(f.ok, false);
    assert.equal(f.steps.find((x: { name: string }) => x.name === 'upload').status, 'failed');
    assert.match(f.error, /could not fetch chunk-\d+ from bucket ferry-test/);
    const prefix = `chroma-ferry/${f.deployId}/`;
    const kept = await s3.listKeys(prefix);
    assert.ok(kept.length >= 1, 'objects kept after a failure');
    const note = f.warnings.find((w: string) => w.includes('kept in'));
    assert.ok(note, JSON.stringify(f.warnings));
    assert.ok(note.includes(`s3://${s3.bucket}/${prefix}`));
    assert.equal(await digestTree(env.live), volBefore, 'the live dir is untouched');
    assertNoSecrets(s3, failed);

    s3.reset();
    const r = await runCli(deployArgs(env, target, '/data', s3Args(s3)), { env: { ...s3.env, ...PART_ENV } });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.deployId, f.deployId, 'deterministic chunks: same archive id');
    const created = s3.events.filter((e) => e.name.startsWith('ObjectCreated'));
    assert.equal(created.length, r.json.archive.chunks - kept.length, 'objects already in the bucket are not uploaded again');
    assert.ok(created.every((e) => !kept.includes(e.key)));
    assert.equal(r.json.upload.chunksSent, r.json.archive.chunks, 'every chunk fetched by the remote');
    assert.match(r.json.steps.find((x: { name: string }) => x.name === 'upload').note, new RegExp(`${kept.length} already in the bucket`));
    assert.deepEqual(await s3.listKeys(), []);
    assertNoSecrets(s3, r);
  });

  it('the human summary shows no secret either', async () => {
    const args = deployArgs(env, target, '/data', s3Args(s3)).filter((a) => a !== '--json');
    const r = await runCli(args, { env: { ...s3.env, ...PART_ENV } });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /DEPLOYED/);
    assertNoSecrets(s3, r);
  });

  it('an unreachable endpoint or a missing bucket: one line, exit 2, volume unchanged', async () => {
    const volBefore = await digestTree(env.volumeOnDisk);
    const dead = 'http://127.0.0.1:1';
    const unreachable = await runCli(
      deployArgs(env, target, '/data', ['--upload', 's3', '--s3-bucket', s3.bucket, '--s3-endpoint', dead]),
      { env: s3.env },
    );
    assert.equal(unreachable.code, 2, unreachable.stderr + unreachable.stdout);
    assert.equal(unreachable.stderr.trim().split('\n').length, 1, unreachable.stderr);
    assert.match(unreachable.stderr, /bucket ferry-test at 127\.0\.0\.1:1 is not usable: cannot reach/);
    const missing = await runCli(
      deployArgs(env, target, '/data', ['--upload', 's3', '--s3-bucket', 'no-such-bucket', '--s3-endpoint', s3.endpoint]),
      { env: s3.env },
    );
    assert.equal(missing.code, 2, missing.stderr + missing.stdout);
    assert.equal(missing.stderr.trim().split('\n').length, 1, missing.stderr);
    assert.match(missing.stderr, /bucket no-such-bucket .* not usable: not found/);
    assert.equal(await digestTree(env.volumeOnDisk), volBefore, 'nothing changed on the volume');
    assertNoSecrets(s3, unreachable, missing);
  });
});

const sshd = await startSshd();
const skip = sshd ? false : 'openssh-server is not installed (see the warning above)';

describe('deploy with --upload s3 over ssh://', { skip }, () => {
  const d = sshd as TestSshd;
  let s3: TestS3;
  before(async () => { s3 = await startS3(); });
  after(async () => {
    await s3?.stop();
    await d?.stop();
  });

  it('the remote fetches every chunk from the bucket; verified, served content equal, objects deleted', async () => {
    const env = await makeDeployEnv({ source: BIG });
    try {
      const sourceDigest = await digestTree(env.source);
      const sourceContent = await contentDigestOfDir(env.source);
      const ssh = ['--ssh-key', d.keyFile, ...d.sshOptions.flatMap((o) => ['--ssh-option', o])];
      const r = await runCli(deployArgs(env, d.target, env.volumeOnDisk, [...ssh, ...s3Args(s3, ['--s3-prefix', 'ssh-test'])]), { env: { ...s3.env, ...PART_ENV } });
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.equal(r.json.verified, true);
      assert.equal(r.json.upload.chunksSent, r.json.archive.chunks);
      const created = s3.events.filter((e) => e.name.startsWith('ObjectCreated'));
      assert.equal(created.length, r.json.archive.chunks);
      assert.ok(created.every((e) => e.key.startsWith(`ssh-test/${r.json.deployId}/`)));
      assert.ok(overlappingUploads(s3), 'chunks uploaded in parallel');
      assert.deepEqual((await listCollectionCounts(env.url)).map((c) => [c.name, c.count]), [['vectors', 3000]]);
      assert.equal(await servedContentDigest(env.url), sourceContent);
      assert.deepEqual(await s3.listKeys(), []);
      assert.equal(await digestTree(env.source), sourceDigest);
      assertNoSecrets(s3, r);
    } finally {
      await env.stop();
    }
  });
});
