/**
 * `--upload s3`: the S3/R2 bridge. Each chunk goes from this machine to a bucket (multipart for
 * chunks larger than one part, skipped when an object with the same size and sha256 is already
 * there), then the remote host fetches it from a short-lived presigned GET URL with the first of
 * curl, wget, python3 or perl (+ openssl for https) it has (lib/remote/http-transfer.ts), picked
 * once per run, the URL passed on the tool's stdin so that it never appears on a command line,
 * in `ps` or in a rendered command. The runbook then verifies size and sha256 remotely as for every
 * method. After a verified deploy the deploy's objects are deleted; after a failure they are
 * kept so that a re-run does not upload them again.
 *
 * Credentials come only from the standard AWS chain (environment, shared config/profile, ...).
 * Presigned URLs, the secret key and the session token are registered as secrets, and every SDK
 * or remote error is rewrapped into a message that carries no URL or signature.
 */
import fs from 'node:fs';
import {
  DeleteObjectsCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { ChunkInfo } from '../archive/pack.ts';
import { RemoteCommandError, UserError } from '../common/errors.ts';
import type { RemoteHost, RenderedCommand } from '../hosts/remote-host.ts';
import {
  fetchUrlScript, noHttpToolMessage, parseHttpToolProbe, probeHttpToolScript, schemeOf, urlStdin, type HttpTool,
} from '../remote/http-transfer.ts';
import { redact, registerSecret } from '../report/secrets.ts';
import type { ChunkUploader } from './chunk-uploader.ts';
import { DEFAULT_PART_SIZE, defaultRegion, normalizePrefix, PRESIGN_EXPIRES_S, registerAwsEnvSecrets, type S3UploaderOptions } from './s3-config.ts';

// The flag parsing and defaults live in s3-config.ts (no SDK loaded); re-exported for callers.
export * from './s3-config.ts';

/** The metadata key (x-amz-meta-sha256) that holds a chunk's sha256, for the resume check. */
const SHA_META = 'sha256';

/**
 * `presignsPut`: the client presigns PUT URLs for another program (curl on the remote). The SDK
 * would otherwise put a CRC32 of an empty body into such a URL, which S3 then rejects.
 */
export function createS3Client(o: Pick<S3UploaderOptions, 'endpoint' | 'region'>, use: { presignsPut?: boolean } = {}): S3Client {
  // The SDK's notice about its future Node 22 requirement would break the one-line error output
  // contract (this project supports Node 20); opt out unless the user set the variable.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const config: S3ClientConfig = {
    region: o.region ?? defaultRegion(),
    maxAttempts: 3,
    requestHandler: { connectionTimeout: 10_000, requestTimeout: 120_000 },
  };
  if (o.endpoint) {
    config.endpoint = o.endpoint;
    config.forcePathStyle = true;
  }
  if (o.endpoint || use.presignsPut) {
    // S3-compatible stores (R2, MinIO, test servers) do not all accept the SDK's default
    // aws-chunked trailing checksums; the chunk sha256 is checked end to end anyway.
    config.requestChecksumCalculation = 'WHEN_REQUIRED';
    config.responseChecksumValidation = 'WHEN_REQUIRED';
  }
  return new S3Client(config);
}

/** A presigned GET URL for one object; registered as a secret before it is returned. */
export async function presignGet(client: S3Client, bucket: string, key: string, expiresS = PRESIGN_EXPIRES_S): Promise<string> {
  const url = await getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn: Math.min(expiresS, 900) });
  registerSecret(url);
  return url;
}

/** A presigned PUT URL for one object (the remote uploads with it); registered as a secret before it is returned. */
export async function presignPut(client: S3Client, bucket: string, key: string, expiresS: number): Promise<string> {
  const url = await getSignedUrl(client, new PutObjectCommand({ Bucket: bucket, Key: key }), { expiresIn: Math.min(expiresS, 900) });
  registerSecret(url);
  return url;
}

/**
 * The remote's HTTP client for `direction` to `endpoint` (its scheme; none: AWS, https), the first
 * of curl, GNU wget, python3, perl (+ openssl for https); a one-line UserError naming what to
 * install when it has none, for `forWhat`.
 */
export async function detectHttpTool(
  host: RemoteHost, direction: 'get' | 'put', endpoint: string | undefined, forWhat: string, signal?: AbortSignal,
): Promise<HttpTool> {
  const scheme = schemeOf(endpoint);
  const probe = parseHttpToolProbe((await host.run(probeHttpToolScript(direction, scheme), { signal })).stdout);
  if (probe.tool) return probe.tool;
  throw new UserError(noHttpToolMessage(host.label, scheme, forWhat, probe.hasPerl));
}

/** "bucket NAME" or "bucket NAME at HOST": where objects go, for messages (never with credentials). */
export function describeBucket(bucket: string, endpoint?: string): string {
  return `bucket ${bucket}${endpoint ? ` at ${new URL(endpoint).host}` : ''}`;
}

/** HeadBucket: the bucket exists and the credentials may use it; else a one-line UserError. */
export async function checkBucket(client: S3Client, bucket: string, endpoint: string | undefined, signal?: AbortSignal): Promise<void> {
  try {
    await client.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal: signal });
  } catch (e) {
    if (signal?.aborted) throw e;
    throw new UserError(`${describeBucket(bucket, endpoint)} is not usable: ${describeS3Error(e)}; check the bucket, --s3-endpoint and the AWS credentials`);
  }
}

export class S3Uploader implements ChunkUploader {
  readonly method = 's3' as const;
  readonly bucket: string;
  readonly prefix: string;
  private readonly client: S3Client;
  private readonly partSize: number;
  private deployId?: string;
  private fetchTool?: HttpTool;
  /** Objects this run put in the bucket and objects found already there (resume). */
  readonly stats = { objectsUploaded: 0, objectsReused: 0, objectsDeleted: 0 };

  constructor(
    private readonly host: RemoteHost,
    private readonly o: S3UploaderOptions,
  ) {
    registerAwsEnvSecrets();
    this.bucket = o.bucket;
    this.prefix = normalizePrefix(o.prefix);
    this.partSize = o.partSize ?? DEFAULT_PART_SIZE;
    if (this.partSize < 5 * 1024 * 1024) lowerLibStorageMinimum(this.partSize);
    this.client = createS3Client(o);
  }

  private get where(): string {
    return describeBucket(this.bucket, this.o.endpoint);
  }

  /** `PREFIX<deployId>/`: every object of one deploy. */
  deployPrefix(): string {
    if (!this.deployId) throw new Error('S3Uploader: begin(deployId) was not called');
    return `${this.prefix}${this.deployId}/`;
  }

  keyFor(chunk: ChunkInfo): string {
    return `${this.deployPrefix()}${chunk.name}`;
  }

  async preflight(signal: AbortSignal): Promise<void> {
    await checkBucket(this.client, this.bucket, this.o.endpoint, signal);
    this.fetchTool = await detectHttpTool(this.host, 'get', this.o.endpoint, '--upload s3', signal);
  }

  async begin(deployId: string): Promise<void> {
    this.deployId = deployId;
  }

  /**
   * By hand the bridge is not reproduced: its presigned URLs are made at run time and never
   * printed. The plan shows the host's own put, which lands the same bytes at the same path.
   */
  render(chunkFile: string, partialPath: string): RenderedCommand[] {
    return [this.host.renderPut(chunkFile, partialPath)];
  }

  async upload(chunk: ChunkInfo, partialPath: string, signal: AbortSignal): Promise<void> {
    const key = this.keyFor(chunk);
    if (await this.hasObject(key, chunk, signal)) {
      this.stats.objectsReused++;
    } else {
      await this.putObject(key, chunk, signal);
      this.stats.objectsUploaded++;
    }
    if (!this.fetchTool) await this.preflight(signal);
    let url: string;
    try {
      url = await presignGet(this.client, this.bucket, key, this.o.presignExpiresS);
    } catch (e) {
      throw new Error(`presigning ${chunk.name} in ${this.where} failed: ${describeS3Error(e)}`);
    }
    try {
      await this.host.run(fetchUrlScript(partialPath, this.fetchTool!), { stdin: urlStdin(this.fetchTool!, url), signal });
    } catch (e) {
      if (signal.aborted) throw e;
      const detail = e instanceof RemoteCommandError
        ? `${this.fetchTool} exit ${e.exitCode}${e.stderr.trim() ? `: ${lastLine(e.stderr)}` : ''}`
        : e instanceof Error ? e.message : String(e);
      throw new Error(redact(`the remote host could not fetch ${chunk.name} from ${this.where} (${detail})`));
    }
  }

  /** True when the object exists with this chunk's size and sha256 (a resumed deploy). */
  private async hasObject(key: string, chunk: ChunkInfo, signal: AbortSignal): Promise<boolean> {
    try {
      const h = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: signal });
      return h.ContentLength === chunk.size && h.Metadata?.[SHA_META] === chunk.sha256;
    } catch (e) {
      if (signal.aborted) throw e;
      if (httpStatus(e) === 404 || errName(e) === 'NotFound' || errName(e) === 'NoSuchKey') return false;
      throw new Error(`checking ${chunk.name} in ${this.where} failed: ${describeS3Error(e)}`);
    }
  }

  private async putObject(key: string, chunk: ChunkInfo, signal: AbortSignal): Promise<void> {
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.bucket, Key: key, Body: fs.createReadStream(chunk.file), ContentLength: chunk.size,
        ContentType: 'application/octet-stream', Metadata: { [SHA_META]: chunk.sha256 },
      },
      partSize: this.partSize,
      queueSize: Math.max(1, this.o.partConcurrency ?? 4),
      leavePartsOnError: false,
    });
    const onAbort = () => { void upload.abort().catch(() => undefined); };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await upload.done();
    } catch (e) {
      if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error(`upload of ${chunk.name}: cancelled`);
      throw new Error(`uploading ${chunk.name} to ${this.where} failed: ${describeS3Error(e)}`);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Delete every object of this deploy (`PREFIX<deployId>/`). */
  async cleanupAfterSuccess(): Promise<void> {
    if (!this.deployId) return;
    const prefix = this.deployPrefix();
    try {
      let token: string | undefined;
      do {
        const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
        const keys = (page.Contents ?? []).map((c) => c.Key!).filter(Boolean);
        if (keys.length) {
          const r = await this.client.send(new DeleteObjectsCommand({
            Bucket: this.bucket, Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true },
          }));
          if (r.Errors?.length) throw new Error(`${r.Errors.length} objects could not be deleted (${r.Errors[0]!.Code ?? 'error'})`);
          this.stats.objectsDeleted += keys.length;
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    } catch (e) {
      throw new Error(`removing the deploy's objects under ${prefix} in ${this.where} failed: ${describeS3Error(e)}; delete them by hand`);
    }
  }

  uploadNote(): string | undefined {
    const { objectsUploaded, objectsReused } = this.stats;
    return `via s3://${this.bucket}/${this.deployId ? this.deployPrefix() : this.prefix}: ${objectsUploaded} objects uploaded, ${objectsReused} already in the bucket`
      + `${this.fetchTool ? `, fetch_tool=${this.fetchTool}` : ''}`;
  }

  noteAfterFailure(): string | undefined {
    if (!this.deployId) return undefined;
    const n = this.stats.objectsUploaded + this.stats.objectsReused;
    return `${n ? `${n} uploaded chunks are` : 'any uploaded chunks are'} kept in s3://${this.bucket}/${this.deployPrefix()}` +
      `${this.o.endpoint ? ` (${new URL(this.o.endpoint).host})` : ''} for the resume: re-run the same deploy to reuse them; a verified deploy deletes them`;
  }
}

/**
 * lib-storage refuses parts under 5 MiB (the S3 minimum for all but the last part). Tests set a
 * smaller part size (CHROMA_FERRY_S3_PART_SIZE) to exercise multipart on small chunks against a
 * local S3 server; the minimum is lowered for this process only.
 */
function lowerLibStorageMinimum(partSize: number): void {
  const U = Upload as unknown as { MIN_PART_SIZE: number };
  if (U.MIN_PART_SIZE > partSize) U.MIN_PART_SIZE = partSize;
}

function httpStatus(e: unknown): number | undefined {
  return (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function errName(e: unknown): string {
  return (e as { name?: string })?.name ?? '';
}

/**
 * One clean phrase for an SDK error: the HTTP status or the network error code, never the
 * SDK's message as-is (it can embed request URLs and signatures).
 */
export function describeS3Error(e: unknown): string {
  const status = httpStatus(e);
  const name = errName(e);
  const code = (e as { code?: string })?.code ?? (e as { cause?: { code?: string } })?.cause?.code;
  if (name === 'CredentialsProviderError' || /credential/i.test(name)) {
    return 'no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)';
  }
  if (status === 404 || name === 'NotFound' || name === 'NoSuchBucket') return 'not found (HTTP 404)';
  if (status === 403 || name === 'AccessDenied' || name === 'Forbidden') return 'access denied (HTTP 403)';
  if (status === 301 || name === 'PermanentRedirect') return 'the bucket is in another region (HTTP 301); set --s3-region';
  if (status) return `HTTP ${status}${/^[A-Za-z]+$/.test(name) && name !== 'Unknown' ? ` ${name}` : ''}`;
  if (code && /^[A-Z_]+$/.test(code)) return `cannot reach the endpoint (${code})`;
  if (name === 'TimeoutError' || /timeout/i.test(name)) return 'the endpoint did not answer in time';
  if (/^[A-Za-z]+$/.test(name) && name !== 'Error') return `${name}`;
  return `cannot reach the endpoint (${redact(lastLine(e instanceof Error ? e.message : String(e))).replace(/https?:\/\/\S+/g, '<url>')})`;
}

function lastLine(s: string): string {
  return s.trim().split('\n').slice(-1)[0] ?? '';
}
