/**
 * Sends chunks into the remote incoming dir, each verified there (size + sha256) before it gets
 * its final name; chunks already there with the right sha256 are not sent again. Chunks can be
 * handed over one by one while packing goes on (`ship`), up to `concurrency` in flight (fewer once
 * a chunk's upload shows they are enough to keep the pipe full: upload-lanes.ts); `finish` waits
 * for all of them and throws the first failure.
 */
import path from 'node:path';
import pLimit from 'p-limit';
import type { ChunkInfo } from '../archive/pack.ts';
import type { RemoteHost } from '../hosts/remote-host.ts';
import { acceptChunkScript, discardFailedChunkScript } from '../remote/scripts.ts';
import { openIncomingScript, stopExtractorScript } from '../remote/extractor.ts';
import { refusalOf } from '../remote/refusals.ts';
import type { RemoteScript } from '../remote/shell.ts';
import type { ChunkUploader } from './chunk-uploader.ts';
import { lanesFor } from './upload-lanes.ts';

/** Where a chunk lands in the incoming dir (a partial file) and the script that checks it and gives it its name. */
export function chunkArrival(dir: string, ch: Pick<ChunkInfo, 'name' | 'size' | 'sha256'>): { partial: string; accept: RemoteScript } {
  const final = path.posix.join(dir, ch.name);
  const partial = path.posix.join(dir, `.${ch.name}.partial`);
  return { partial, accept: acceptChunkScript(partial, final, ch.size, ch.sha256) };
}

export class ChunkShipper {
  chunksSent = 0;
  chunksSkipped = 0;
  bytesSent = 0;
  /** Bytes of the chunks found already verified on the remote (not sent again). */
  bytesSkipped = 0;
  /** When `open` began (performance.now()): the throughput of the progress display counts from here. */
  openedAt = 0;
  private readonly present = new Map<string, string>();
  private readonly limit: ReturnType<typeof pLimit>;
  private readonly maxLanes: number;
  private readonly jobs: Promise<void>[] = [];
  /** The first failure (boxed: any value may be thrown); later chunks are not sent after it. */
  private failure: { error: unknown } | undefined;
  /** A chunk failed (its failure may still be settling): no later chunk starts. */
  private stopped = false;

  constructor(
    private readonly host: RemoteHost,
    private readonly uploader: ChunkUploader,
    /** The remote incoming dir, `.ferry/incoming/<deployId>`. */
    readonly dir: string,
    private readonly deployId: string,
    concurrency: number,
    private readonly signal: AbortSignal,
    private readonly onChunkDone?: (shipper: ChunkShipper) => void,
  ) {
    this.maxLanes = Math.max(1, concurrency);
    this.limit = pLimit(this.maxLanes);
  }

  /** Chunks kept in flight now: --upload-concurrency until a chunk's upload was measured. */
  get lanes(): number {
    return this.limit.concurrency;
  }

  /** How the remote extractor stood when the upload began: `started`, `finished` (an earlier run's), or '' (none). */
  extractor = '';
  /** The token of the extractor this run started (its ownership), when it started one. */
  extractorToken = '';

  /**
   * Creates the incoming dir, lists the verified chunks already there, starts the remote
   * extractor (lib/remote/extractor.ts: it extracts the chunks as they arrive), and begins the uploader.
   */
  async open(): Promise<void> {
    this.openedAt = performance.now();
    for (const line of (await this.host.run(openIncomingScript(this.dir), { signal: this.signal })).stdout.split('\n')) {
      if (line.startsWith('extractor=')) this.extractor = line.slice('extractor='.length).trim();
      if (line.startsWith('extractor_token=')) this.extractorToken = line.slice('extractor_token='.length).trim();
      const [sha, name] = line.trim().split(/\s+/);
      if (sha && name) this.present.set(name, sha);
    }
    await this.uploader.begin?.(this.deployId, this.signal);
  }

  /**
   * The run ends before its reassemble (a failed upload): stop the extractor it started, so that
   * no process of this run stays on the remote polling for chunks. The chunks stay for the rerun.
   * Best effort (the connection may be gone: the worker then stops on its own when idle).
   */
  async stopExtractor(): Promise<void> {
    if (!this.extractorToken) return;
    await this.host.run(stopExtractorScript(this.dir, this.extractorToken)).catch(() => undefined);
  }

  get done(): number {
    return this.chunksSent + this.chunksSkipped;
  }

  ship(ch: ChunkInfo): void {
    const job = this.limit(async () => {
      if (this.stopped) return;
      this.signal.throwIfAborted();
      if (this.present.get(ch.name) === ch.sha256) {
        this.chunksSkipped++;
        this.bytesSkipped += ch.size;
      } else {
        const { partial, accept } = chunkArrival(this.dir, ch);
        try {
          const sharing = this.limit.activeCount;
          const t0 = performance.now();
          let t1 = t0;
          if (this.uploader.uploadChecked) await this.uploader.uploadChecked(ch, accept, this.signal);
          else {
            await this.uploader.upload(ch, partial, this.signal);
            t1 = performance.now();
            await this.host.run(accept, { signal: this.signal });
          }
          if (t1 === t0) t1 = performance.now(); // one command: its overhead is inside the upload
          this.limit.concurrency = lanesFor({ uploadMs: t1 - t0, sharing, overheadMs: performance.now() - t1 }, this.maxLanes);
        } catch (e) {
          this.stopped = true;
          // A full volume says so ("volume full: ..."), whatever the uploader reported; the partial goes.
          if (this.signal.aborted) throw e;
          const full = await this.host.run(discardFailedChunkScript(partial, ch.size)).then(() => undefined, (d: unknown) => (refusalOf(d) ? d : undefined));
          throw full ?? e;
        }
        this.chunksSent++;
        this.bytesSent += ch.size;
      }
      this.onChunkDone?.(this);
    }).catch((error: unknown) => {
      this.stopped = true;
      this.failure ??= { error };
    });
    this.jobs.push(job);
  }

  async finish(): Promise<void> {
    await Promise.all(this.jobs);
    if (this.failure) throw this.failure.error;
  }
}
