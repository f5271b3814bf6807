/**
 * S3/R2 settings without the AWS SDK: defaults, flag parsing and the secrets of the AWS
 * environment. Kept apart from s3.ts so that commands that do not talk to a bucket (a deploy
 * over sftp) never load the SDK (~17 MB of memory).
 */
import { UserError } from '../common/errors.ts';
import { registerSecret } from '../report/secrets.ts';

export const DEFAULT_S3_PREFIX = 'chroma-ferry/';
export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
/** Presigned GET URLs live this long: long enough for one chunk fetch, short enough to be useless later. */
export const PRESIGN_EXPIRES_S = 600;

export interface S3UploaderOptions {
  bucket: string;
  /** R2 or any S3-compatible endpoint; path-style addressing when given. */
  endpoint?: string;
  /** Key prefix; normalised to end with "/" (empty allowed). */
  prefix?: string;
  region?: string;
  /** Multipart part size in bytes (default 8 MiB). Below 5 MiB only for test servers. */
  partSize?: number;
  /** Parts of one chunk in flight at once. */
  partConcurrency?: number;
  /** Presigned URL lifetime in seconds (default 600, at most 900). */
  presignExpiresS?: number;
}

/** Register the secret parts of the AWS environment at startup (before any SDK call can echo them). */
export function registerAwsEnvSecrets(env: NodeJS.ProcessEnv = process.env): void {
  registerSecret(env.AWS_SECRET_ACCESS_KEY);
  registerSecret(env.AWS_SESSION_TOKEN);
  registerSecret(env.AWS_ACCESS_KEY_ID);
}

/** `flag`: how the user gave it, for the message (`--s3-prefix`, or `--to` for an s3:// URL). */
export function normalizePrefix(raw: string | undefined, flag = '--s3-prefix'): string {
  const p = raw ?? DEFAULT_S3_PREFIX;
  if (p.startsWith('/')) throw new UserError(`${flag} ${p}: the key prefix must not start with "/"`);
  if (/[\0\n\r]/.test(p)) throw new UserError(`${flag}: must not contain control characters`);
  return p === '' || p.endsWith('/') ? p : `${p}/`;
}

export function parseS3Bucket(raw: string, flag = '--s3-bucket'): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$/.test(raw)) {
    throw new UserError(`${flag} ${JSON.stringify(raw)}: not a bucket name (letters, digits, ".", "-", "_")`);
  }
  return raw;
}

export function parseS3Endpoint(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new UserError(`--s3-endpoint: not a URL; use e.g. https://ACCOUNT.r2.cloudflarestorage.com`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UserError('--s3-endpoint: must be http:// or https://');
  if (u.username || u.password) throw new UserError('--s3-endpoint: must not hold credentials; use the AWS environment or profile');
  return raw.replace(/\/+$/, '');
}

export function defaultRegion(env: NodeJS.ProcessEnv = process.env): string {
  return env.AWS_REGION || env.AWS_DEFAULT_REGION || 'auto';
}

export interface S3Destination {
  bucket: string;
  /** Key prefix, "" or ending in "/". */
  prefix: string;
}

/** `s3://BUCKET` or `s3://BUCKET/PREFIX` (the object is PREFIX/NAME). */
export function parseS3Url(raw: string, flag = '--to'): S3Destination {
  const m = /^s3:\/\/([^/]*)(?:\/(.*))?$/.exec(raw);
  if (!m) throw new UserError(`${flag} ${JSON.stringify(raw)}: expected s3://BUCKET/PREFIX`);
  return { bucket: parseS3Bucket(m[1]!, flag), prefix: normalizePrefix(m[2] ?? '', flag) };
}
