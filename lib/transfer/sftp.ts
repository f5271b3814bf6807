import type { ChunkInfo } from '../archive/pack.ts';
import type { RemoteHost, RenderedCommand } from '../hosts/remote-host.ts';
import type { ChunkUploader } from './chunk-uploader.ts';

/** The host's own file upload (sftp for ssh:// and fly:, a copy for local:). */
export class HostPutUploader implements ChunkUploader {
  readonly method = 'sftp' as const;
  constructor(private readonly host: RemoteHost) {}

  warmUp(): void {
    this.host.warmUpPuts?.();
  }

  async upload(chunk: ChunkInfo, partialPath: string, signal: AbortSignal): Promise<void> {
    await this.host.put(chunk.file, partialPath, { signal });
  }

  render(chunkFile: string, partialPath: string): RenderedCommand[] {
    return [this.host.renderPut(chunkFile, partialPath)];
  }
}
