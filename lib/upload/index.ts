import { UserError } from '../errors.ts';
import type { RemoteHost } from '../hosts/remote-host.ts';
import type { ChunkUploader, UploadMethod } from './chunk-uploader.ts';
import { HostPutUploader } from './sftp.ts';
import { StreamUploader } from './stream.ts';

export function createUploader(method: UploadMethod, host: RemoteHost): ChunkUploader {
  switch (method) {
    case 'sftp':
      return new HostPutUploader(host);
    case 'stream':
      return new StreamUploader(host);
    case 's3':
      throw new UserError('--upload s3 is not available yet; use --upload sftp or stream');
  }
}
