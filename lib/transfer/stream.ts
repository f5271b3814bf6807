import fs from 'node:fs';
import type { ChunkInfo } from '../archive/pack.ts';
import type { RemoteHost, RenderedCommand } from '../hosts/remote-host.ts';
import { shQuote } from '../remote/shell.ts';
import { receiveStdinScript } from '../remote/scripts.ts';
import type { ChunkUploader } from './chunk-uploader.ts';

/** Each chunk piped through the remote command's stdin (`cat > partial`): no sftp needed. */
export class StreamUploader implements ChunkUploader {
  readonly method = 'stream' as const;
  constructor(private readonly host: RemoteHost) {}

  async upload(chunk: ChunkInfo, partialPath: string, signal: AbortSignal): Promise<void> {
    await this.host.run(receiveStdinScript(partialPath), { stdin: fs.createReadStream(chunk.file), signal });
  }

  render(chunkFile: string, partialPath: string): RenderedCommand[] {
    const r = this.host.renderRun(receiveStdinScript(partialPath));
    return [{ on: r.on, command: `${r.command} < ${shQuote(chunkFile)}` }];
  }
}
