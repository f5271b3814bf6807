import fs from 'node:fs';
import type { ChunkInfo } from '../archive/pack.ts';
import type { RemoteHost, RenderedCommand } from '../hosts/remote-host.ts';
import { shQuote } from '../remote/shell.ts';
import { receiveAndAcceptScript, receiveStdinScript } from '../remote/scripts.ts';
import type { RemoteScript } from '../remote/shell.ts';
import type { ChunkUploader } from './chunk-uploader.ts';

/** Each chunk piped through the remote command's stdin (`cat > partial`): no sftp needed. */
export class StreamUploader implements ChunkUploader {
  readonly method = 'stream' as const;
  constructor(private readonly host: RemoteHost) {}

  async upload(chunk: ChunkInfo, partialPath: string, signal: AbortSignal): Promise<void> {
    await this.host.run(receiveStdinScript(partialPath), { stdin: fs.createReadStream(chunk.file), signal });
  }

  /** stdin to the partial file, then its check and rename, in one remote command. */
  async uploadChecked(chunk: ChunkInfo, accept: RemoteScript, signal: AbortSignal): Promise<void> {
    await this.host.run(receiveAndAcceptScript(accept), { stdin: fs.createReadStream(chunk.file), signal });
  }

  renderChecked(chunkFile: string, accept: RemoteScript): RenderedCommand {
    const r = this.host.renderRun(receiveAndAcceptScript(accept));
    return { on: r.on, command: `${r.command} < ${shQuote(chunkFile)}` };
  }

  render(chunkFile: string, partialPath: string): RenderedCommand[] {
    const r = this.host.renderRun(receiveStdinScript(partialPath));
    return [{ on: r.on, command: `${r.command} < ${shQuote(chunkFile)}` }];
  }
}
