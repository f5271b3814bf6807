/**
 * gzip on several cores: the input is cut into fixed-size blocks, each compressed on libuv's
 * thread pool as its own gzip member, and the members are written in input order. Concatenated
 * members are one valid gzip stream (RFC 1952 2.2; `gzip -dc`, zlib's gunzip and node-tar read
 * it whole), and fixed blocks keep the output deterministic: the same input gives the same bytes.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { promisify } from 'node:util';
import zlib from 'node:zlib';

const gzip = promisify(zlib.gzip);

export const GZIP_BLOCK_BYTES = 1024 * 1024;
/** Blocks compressed at once unless told: this tool's reference machine has two cores. */
export const DEFAULT_GZIP_WORKERS = 2;

export interface ParallelGzipOptions {
  level: number;
  /**
   * Blocks compressed at once (default DEFAULT_GZIP_WORKERS); a function
   * is asked before each block (the packing ahead of a deploy uses one core while the preflight runs).
   */
  workers?: number | (() => number);
  blockBytes?: number;
}

export function createParallelGzip(o: ParallelGzipOptions): Transform {
  const workers = () => Math.max(1, (typeof o.workers === 'function' ? o.workers() : o.workers) ?? DEFAULT_GZIP_WORKERS);
  const blockBytes = o.blockBytes ?? GZIP_BLOCK_BYTES;
  const inFlight: Promise<Buffer>[] = [];
  let parts: Buffer[] = [];
  let partBytes = 0;
  let members = 0;

  const dispatch = (block: Buffer) => {
    members++;
    inFlight.push(gzip(block, { level: o.level }));
  };

  return new Transform({
    // Each queued block holds up to blockBytes: bound the memory by the number in flight.
    writableHighWaterMark: blockBytes,
    transform(this: Transform, chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      (async () => {
        let off = 0;
        while (off < chunk.length) {
          const n = Math.min(blockBytes - partBytes, chunk.length - off);
          parts.push(chunk.subarray(off, off + n));
          partBytes += n;
          off += n;
          if (partBytes === blockBytes) {
            dispatch(Buffer.concat(parts, partBytes));
            parts = [];
            partBytes = 0;
            // Keep `workers` blocks compressing; emit the oldest when the pool is full.
            while (inFlight.length >= workers()) this.push(await inFlight.shift()!);
          }
        }
      })().then(() => cb(), cb);
    },
    flush(this: Transform, cb: TransformCallback) {
      (async () => {
        if (partBytes > 0 || members === 0) dispatch(Buffer.concat(parts, partBytes));
        parts = [];
        while (inFlight.length) this.push(await inFlight.shift()!);
      })().then(() => cb(), cb);
    },
  });
}
