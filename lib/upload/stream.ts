import fs from 'node:fs';
import type { ChunkInfo } from '../archive/pack.ts';
import type { RemoteHost } from '../hosts/remote-host.ts';
import { receiveStdinScript } from '../remote-scripts.ts';
import type { ChunkUploader } from './chunk-uploader.ts';

/** Each chunk piped through the remote command's stdin (`cat > partial`): no sftp needed. */
export class StreamUploader implements ChunkUploader {
  readonly method = 'stream' as const;
  constructor(private readonly host: RemoteHost) {}

  async upload(chunk: ChunkInfo, partialPath: string, signal: AbortSignal): Promise<void> {
    await this.host.run(receiveStdinScript(partialPath), { stdin: fs.createReadStream(chunk.file), signal });
  }
}
