/**
 * An in-process S3 server (s3rver) on 127.0.0.1 with a temp directory, for `--upload s3`.
 * s3rver does not verify v4 signatures, but it does require a known access key id: the fake
 * credentials below are registered with it. It records object writes (events) and, per object
 * key, the time span of its write requests, so that tests can see parallel uploads. With
 * `watchProcesses`, every request of a presigned URL (X-Amz-Signature in its query) is checked
 * while it is in flight: no process on this machine may show that signature in its command line
 * or environment (test/helpers/proc-scan.ts).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import AWSAccount from 's3rver/lib/models/account.js';
import { processesShowing, type ProcessHit } from './proc-scan.ts';

export const FAKE_AWS = {
  AWS_ACCESS_KEY_ID: 'AKIAFERRYTESTKEY0001',
  AWS_SECRET_ACCESS_KEY: 'ferryTestSecret/Zq8vK2mW9xR4tY7uI1oP3aS5dF6gH',
  AWS_REGION: 'us-east-1',
};

export interface TestS3 {
  endpoint: string;
  port: number;
  bucket: string;
  /** eventName per object write or delete, in order ("ObjectCreated:Put", "ObjectCreated:Post" for multipart, ...). */
  events: { name: string; key: string }[];
  /** Per key: first and last time a write request (PUT/POST) for it started/ended. */
  writeSpans: Map<string, { start: number; end: number; requests: number }>;
  /** With `watchProcesses`: each request of a presigned URL, and the processes that showed its signature meanwhile. */
  presigned: { method: string; key: string; shownBy: ProcessHit[] }[];
  /** Env for the CLI: fake credentials, no shared config. */
  env: Record<string, string>;
  listKeys(prefix?: string): Promise<string[]>;
  reset(): void;
  stop(): Promise<void>;
}

export async function startS3(bucket = 'ferry-test', o: { watchProcesses?: boolean } = {}): Promise<TestS3> {
  AWSAccount.DUMMY_ACCOUNT.createKeyPair(FAKE_AWS.AWS_ACCESS_KEY_ID, FAKE_AWS.AWS_SECRET_ACCESS_KEY);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-s3-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir, configureBuckets: [{ name: bucket }] });
  const { port } = await server.run();
  const events: TestS3['events'] = [];
  const writeSpans: TestS3['writeSpans'] = new Map();
  const presigned: TestS3['presigned'] = [];
  server.on('event', (e) => {
    for (const r of e.Records) events.push({ name: r.eventName, key: decodeURIComponent(r.s3.object.key) });
  });
  server.httpServer.prependListener('request', (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const key = decodeURIComponent(url.pathname.split('/').slice(2).join('/'));
    const signature = url.searchParams.get('X-Amz-Signature');
    if (o.watchProcesses && signature) presigned.push({ method: req.method ?? '', key, shownBy: processesShowing(signature) });
    if (req.method !== 'PUT' && req.method !== 'POST') return;
    const t = performance.now();
    const span = writeSpans.get(key) ?? { start: t, end: t, requests: 0 };
    span.requests++;
    writeSpans.set(key, span);
    res.on('finish', () => { span.end = Math.max(span.end, performance.now()); });
  });
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({
    endpoint, forcePathStyle: true, region: FAKE_AWS.AWS_REGION,
    credentials: { accessKeyId: FAKE_AWS.AWS_ACCESS_KEY_ID, secretAccessKey: FAKE_AWS.AWS_SECRET_ACCESS_KEY },
  });
  return {
    endpoint, port, bucket, events, writeSpans, presigned,
    env: { ...FAKE_AWS, AWS_CONFIG_FILE: '/nonexistent', AWS_SHARED_CREDENTIALS_FILE: '/nonexistent', AWS_EC2_METADATA_DISABLED: 'true' },
    async listKeys(prefix = '') {
      const r = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
      return (r.Contents ?? []).map((c) => c.Key!).sort();
    },
    reset() {
      events.length = 0;
      writeSpans.clear();
      presigned.length = 0;
    },
    async stop() {
      client.destroy();
      await server.close().catch(() => undefined);
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** Nothing secret in any output: no signature, credential, presigned URL, key or secret. */
export function assertNoSecrets(s3: TestS3, ...runs: { stdout: string; stderr: string; json?: unknown }[]): void {
  for (const r of runs) {
    const all = `${r.stdout}\n${r.stderr}\n${JSON.stringify(r.json ?? {})}`;
    for (const needle of ['X-Amz-Signature', 'X-Amz-Credential', 'X-Amz-Security-Token', FAKE_AWS.AWS_SECRET_ACCESS_KEY, FAKE_AWS.AWS_ACCESS_KEY_ID, `${s3.endpoint}/${s3.bucket}`]) {
      const at = all.indexOf(needle);
      assert.ok(at < 0, `output contains ${needle.slice(0, 20)}…: ${all.slice(Math.max(0, at - 300), at + 100)}`);
    }
  }
}
