/**
 * `backups push NAME --to s3://BUCKET/PREFIX`: the remote host uploads a backup archive itself
 * (the first of curl, GNU wget, python3, perl + openssl it has: lib/remote/http-transfer.ts) to a
 * presigned PUT URL that lives a few minutes; the URL reaches the tool on its stdin, so it is in
 * no argv, environment, `ps` listing or rendered command, and the remote never holds
 * credentials. This machine then verifies the object: HeadObject size, and the sha256 of the
 * object's bytes read back through the SDK, against the sha256 computed on the remote.
 *
 * Credentials come from the standard AWS chain only; the secret key, session token, access key id
 * and the presigned URL are registered as secrets (redacted from every line).
 */
import crypto from 'node:crypto';
import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { findBackup, parseBackupNameArg } from './catalog.ts';
import { checksumRemoteBackup } from './operations.ts';
import { RemoteCommandError, UserError } from '../common/errors.ts';
import type { RemoteHost } from '../hosts/remote-host.ts';
import { backupPath, type RemoteLayout } from '../remote/layout.ts';
import { putFileToUrlScript, urlStdin, type HttpTool } from '../remote/http-transfer.ts';
import { redact } from '../report/secrets.ts';
import {
  checkBucket, createS3Client, describeBucket, describeS3Error, detectHttpTool, presignPut, registerAwsEnvSecrets,
} from '../transfer/s3.ts';
import type { S3Destination } from '../transfer/s3-config.ts';

export { parseS3Url, type S3Destination } from '../transfer/s3-config.ts';

/** The presigned PUT URL's lifetime: enough to start the upload, useless soon after. */
export const PUSH_URL_EXPIRES_S = 300;

export interface PushOptions {
  host: RemoteHost;
  layout: RemoteLayout;
  /** `latest` or a backup name. */
  name: string;
  to: S3Destination;
  endpoint?: string;
  region: string;
  signal?: AbortSignal;
}

export interface PushResult {
  name: string;
  /** s3://BUCKET/KEY */
  object: string;
  bytes: number;
  sha256: string;
  /** How the remote uploaded it: curl, wget, python3, perl (http) or perl-openssl (https). */
  tool: HttpTool;
}

export async function pushBackup(o: PushOptions): Promise<PushResult> {
  registerAwsEnvSecrets();
  const { host, layout, signal, to } = o;
  parseBackupNameArg(layout, o.name); // a bad name is refused before anything is contacted
  const client = createS3Client({ endpoint: o.endpoint, region: o.region }, { presignsPut: true });
  const where = describeBucket(to.bucket, o.endpoint);
  try {
    await checkBucket(client, to.bucket, o.endpoint, signal);
    const entry = await findBackup(host, layout, o.name, signal);
    const tool = await detectHttpTool(host, 'put', o.endpoint, 'backups push', signal);
    const remote = await checksumRemoteBackup(host, layout, entry.name, signal);
    const key = `${to.prefix}${entry.name}`;
    let url: string;
    try {
      url = await presignPut(client, to.bucket, key, PUSH_URL_EXPIRES_S);
    } catch (e) {
      throw new Error(`presigning ${key} in ${where} failed: ${describeS3Error(e)}`);
    }
    try {
      await host.run(putFileToUrlScript(backupPath(layout, entry.name), tool), { stdin: urlStdin(tool, url), signal });
    } catch (e) {
      if (signal?.aborted) throw e;
      const detail = e instanceof RemoteCommandError ? `${tool} exit ${e.exitCode}${e.stderr.trim() ? `: ${e.stderr.trim().split('\n').pop()}` : ''}` : String(e);
      throw new Error(redact(`${host.label} could not upload ${entry.name} to ${where} (${detail})`));
    }
    await verifyObject(client, to.bucket, key, remote, where, signal);
    return { name: entry.name, object: `s3://${to.bucket}/${key}`, bytes: remote.bytes, sha256: remote.sha256, tool };
  } finally {
    client.destroy();
  }
}

/** The object has the archive's size (HeadObject) and its bytes, read back, hash to the archive's sha256. */
async function verifyObject(
  client: S3Client, bucket: string, key: string, want: { bytes: number; sha256: string }, where: string, signal?: AbortSignal,
): Promise<void> {
  let size: number | undefined;
  const h = crypto.createHash('sha256');
  try {
    size = (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal })).ContentLength;
    if (size === want.bytes) {
      const body = (await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal })).Body;
      if (!body) throw new Error('GetObject returned no body');
      for await (const chunk of body as AsyncIterable<Uint8Array>) h.update(chunk);
    }
  } catch (e) {
    if (signal?.aborted) throw e;
    throw new Error(`checking ${key} in ${where} after the upload failed: ${describeS3Error(e)}`);
  }
  if (size !== want.bytes) throw new Error(`${key} in ${where} has ${size} bytes after the upload, the archive ${want.bytes}: the upload is incomplete`);
  const got = h.digest('hex');
  if (got !== want.sha256) throw new Error(`${key} in ${where} has sha256 ${got}, the archive ${want.sha256}: the upload is corrupt`);
}
