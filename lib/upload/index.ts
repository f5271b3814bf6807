import { UserError } from '../errors.ts';
import type { RemoteHost } from '../hosts/remote-host.ts';
import type { ChunkUploader, UploadMethod } from './chunk-uploader.ts';
import { S3Uploader, type S3UploaderOptions } from './s3.ts';
import { HostPutUploader } from './sftp.ts';
import { StreamUploader } from './stream.ts';

export interface UploaderOptions {
  /** Required for `--upload s3`. */
  s3?: S3UploaderOptions;
}

export function createUploader(method: UploadMethod, host: RemoteHost, o: UploaderOptions = {}): ChunkUploader {
  switch (method) {
    case 'sftp':
      return new HostPutUploader(host);
    case 'stream':
      return new StreamUploader(host);
    case 's3':
      if (!o.s3?.bucket) throw new UserError('--upload s3 needs --s3-bucket');
      return new S3Uploader(host, o.s3);
  }
}
