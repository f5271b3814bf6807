import { UserError } from '../common/errors.ts';
import type { RemoteHost } from '../hosts/remote-host.ts';
import type { ChunkUploader, UploadMethod } from './chunk-uploader.ts';
import type { S3UploaderOptions } from './s3-config.ts';
import { HostPutUploader } from './sftp.ts';
import { StreamUploader } from './stream.ts';

export interface UploaderOptions {
  /** Required for `--upload s3`. */
  s3?: S3UploaderOptions;
}

/** The uploader of `--upload METHOD`; the S3 one (and the AWS SDK) is loaded only when chosen. */
export async function createUploader(method: UploadMethod, host: RemoteHost, o: UploaderOptions = {}): Promise<ChunkUploader> {
  switch (method) {
    case 'sftp':
      return new HostPutUploader(host);
    case 'stream':
      return new StreamUploader(host);
    case 's3': {
      if (!o.s3?.bucket) throw new UserError('--upload s3 needs --s3-bucket');
      const { S3Uploader } = await import('./s3.ts');
      return new S3Uploader(host, o.s3);
    }
  }
}
