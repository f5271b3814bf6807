import { UserError } from '../common/errors.ts';
import { parseSize } from '../common/units.ts';
import type { UploadMethod } from './chunk-uploader.ts';
import { defaultRegion, normalizePrefix, parseS3Bucket, parseS3Endpoint, registerAwsEnvSecrets, type S3UploaderOptions } from './s3-config.ts';

/** The deploy flags of `--upload s3`. Credentials are never flags: the AWS environment/profile chain only. */
export interface S3Flags {
  s3Bucket?: string;
  s3Endpoint?: string;
  s3Prefix?: string;
  s3Region?: string;
}

/**
 * The S3 options for `--upload s3` (undefined for other methods; s3 flags without `--upload s3`
 * are refused). `CHROMA_FERRY_S3_PART_SIZE` (e.g. `256KiB`) overrides the 8 MiB multipart part
 * size; values under 5 MiB are for S3-compatible test servers only (the tests use it).
 */
export function parseS3Flags(method: UploadMethod, f: S3Flags, env: NodeJS.ProcessEnv = process.env): S3UploaderOptions | undefined {
  registerAwsEnvSecrets(env);
  const given = [f.s3Bucket && '--s3-bucket', f.s3Endpoint && '--s3-endpoint', f.s3Region && '--s3-region'].filter(Boolean);
  if (method !== 's3') {
    if (given.length) throw new UserError(`${given.join(', ')} only apply to --upload s3`);
    return undefined;
  }
  if (!f.s3Bucket) throw new UserError('--upload s3 needs --s3-bucket (and --s3-endpoint for R2 or another S3-compatible store)');
  const partSize = env.CHROMA_FERRY_S3_PART_SIZE ? parseSize('CHROMA_FERRY_S3_PART_SIZE', env.CHROMA_FERRY_S3_PART_SIZE) : undefined;
  if (partSize !== undefined && partSize < 64 * 1024) throw new UserError('CHROMA_FERRY_S3_PART_SIZE: must be at least 64KiB');
  return {
    bucket: parseS3Bucket(f.s3Bucket),
    endpoint: parseS3Endpoint(f.s3Endpoint),
    prefix: normalizePrefix(f.s3Prefix),
    region: f.s3Region || defaultRegion(env),
    partSize,
  };
}
