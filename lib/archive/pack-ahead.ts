/**
 * The snapshot and the packing of a deploy, started before the steps that use them (the deploy
 * starts it while its preflight talks to the remote, which is a matter of round trips, not CPU):
 * the steps then await what they need, and the chunks written meanwhile go out as soon as the
 * upload can take them. Local work files only (the run's own dir); nothing reaches the remote here.
 *
 * What it produces is exactly what the manifest and package steps would produce themselves
 * (`snapshotSource`, `packInputId`, `packToChunks`, same paths and options); every failure is
 * the same error, thrown where a step awaits it.
 */
import path from 'node:path';
import { awaitedLater } from '../common/awaited-later.ts';
import { packInputId, packToChunks, type ChunkInfo, type PackResult } from './pack.ts';
import { DEFAULT_GZIP_WORKERS } from './parallel-gzip.ts';
import { snapshotSource, type SnapshotResult } from './snapshot.ts';

export interface PackAheadOptions {
  source: string;
  /** Where the snapshot goes (the manifest step's dir). */
  snapshotDir: string;
  /** Where the chunks go (the package step's dir). */
  chunksDir: string;
  chunkSize: number;
  signal: AbortSignal;
}

export interface PackFollower {
  onChunk(chunk: ChunkInfo): void;
  onProgress(inputBytesDone: number): void;
}

export class PackAhead {
  readonly snapshot: Promise<SnapshotResult>;
  /** The archive's id (`packInputId`), known before any chunk. */
  readonly inputId: Promise<string>;
  readonly packed: Promise<PackResult>;
  private readonly written: ChunkInfo[] = [];
  private progressDone = 0;
  private follower?: PackFollower;
  private readonly stopper = new AbortController();
  /**
   * One core for gzip while the preflight runs: its round trips, the source's read and the far
   * side's logins need the other (on two cores, packing on both made the preflight ~0.3-0.5 s
   * slower, and the first chunk cannot leave before the preflight ends anyway); both once it ended.
   */
  private gzipWorkers = 1;

  constructor(o: PackAheadOptions) {
    const signal = AbortSignal.any([o.signal, this.stopper.signal]);
    this.snapshot = awaitedLater(snapshotSource(o.source, o.snapshotDir, { signal }));
    this.inputId = awaitedLater(this.snapshot.then((s) => packInputId(s.dir, o.chunkSize, undefined, signal)));
    this.packed = awaitedLater(this.inputId.then(async () => packToChunks((await this.snapshot).dir, o.chunksDir, o.chunkSize, {
      signal,
      gzipWorkers: () => this.gzipWorkers,
      onChunk: (ch) => {
        this.written.push(ch);
        this.follower?.onChunk(ch);
      },
      onProgress: (n) => {
        this.progressDone = n;
        this.follower?.onProgress(n);
      },
    })));
  }

  /** The preflight ended (done or failed): gzip on the packer's usual number of workers. */
  fullSpeed(): void {
    this.gzipWorkers = DEFAULT_GZIP_WORKERS;
  }

  /** Hands the chunks written so far to `f` now, and every later one (and progress) as it comes; resolves with the whole archive. */
  follow(f: PackFollower): Promise<PackResult> {
    if (this.follower) throw new Error('a packing started ahead has one follower');
    this.follower = f;
    if (this.progressDone) f.onProgress(this.progressDone);
    for (const ch of this.written) f.onChunk(ch);
    return this.packed;
  }

  /** Stops what still runs (a run that ends before its package step): resolves once nothing of it writes any more. */
  async stop(): Promise<void> {
    this.stopper.abort(new Error('the deploy ended before its package step'));
    await Promise.allSettled([this.snapshot, this.inputId, this.packed]);
  }
}

/** The snapshot and chunk dirs a deploy run uses in its own dir (one place for the steps and the packing ahead). */
export function packDirsOf(runDir: string): { snapshotDir: string; chunksDir: string } {
  return { snapshotDir: path.join(runDir, 'snapshot'), chunksDir: path.join(runDir, 'chunks') };
}
