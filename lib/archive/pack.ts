import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import { UserError } from '../common/errors.ts';
import { bufferGarbageCollector } from './buffer-garbage.ts';
import { createParallelGzip } from './parallel-gzip.ts';
import { walkTree } from './snapshot.ts';

export interface ChunkInfo {
  index: number;
  /** 'chunk-000000' */
  name: string;
  /** Absolute local path. */
  file: string;
  size: number;
  sha256: string;
}

export interface PackResult {
  chunks: ChunkInfo[];
  archiveSha256: string;
  archiveBytes: number;
  inputBytes: number;
  /** './rel' regular files, byte-order sorted. */
  fileList: string[];
}

export interface PackOptions {
  signal?: AbortSignal;
  /** Called with the number of input (file content) bytes packed so far. */
  onProgress?: (inputBytesDone: number) => void;
  /** 0-9, default 1: a Chroma dir is mostly float vectors, which higher levels shrink by ~1% for ~30% more time. */
  gzipLevel?: number;
  /** Blocks compressed in parallel (default 2), or asked before each block; the output is the same for any number. */
  gzipWorkers?: number | (() => number);
  /** Called with each chunk as soon as its file is complete (the upload can start before packing ends). */
  onChunk?: (chunk: ChunkInfo) => void;
  /** Compute chunk names, sizes and sha256 without writing any file (`--plan`). */
  hashOnly?: boolean;
}

export const MANIFEST_NAME = 'manifest.json';
export const DEFAULT_GZIP_LEVEL = 1;
/** 2: the chunks grow from FIRST_CHUNK_BYTES (1 was every chunk chunkSize); in the pack id, so a rerun never mixes the two. */
const MANIFEST_VERSION = 2;
/** The first chunk's size; each next one is twice the one before, up to the chunk size. */
export const FIRST_CHUNK_BYTES = 1024 * 1024;

/**
 * Size of chunk `index` (the last may be shorter): 1 MiB, 2, 4, ... up to `chunkSize`. The first
 * chunk is packed in a fraction of a second, so the upload starts as soon as the preflight ends
 * instead of waiting for a whole chunk of gzip; by the time the small ones are sent, the packing is
 * ahead. Fixed by the index, so a rerun cuts the same archive into the same chunks.
 */
export function chunkSizeAt(index: number, chunkSize: number): number {
  return Math.min(chunkSize, FIRST_CHUNK_BYTES * 2 ** Math.min(index, 30));
}

export function chunkName(index: number): string {
  return `chunk-${String(index).padStart(6, '0')}`;
}

/** Writes its input into `chunk-NNNNNN` files of exactly chunkSizeAt(index) bytes (the last may be shorter), hashing as it goes. */
class ChunkWriter extends Writable {
  readonly chunks: ChunkInfo[] = [];
  private readonly archiveHash = createHash('sha256');
  archiveBytes = 0;
  archiveSha256 = '';
  private fh: FileHandle | null = null;
  private current: { index: number; file: string; size: number; hash: Hash } | null = null;

  constructor(
    private readonly outDir: string,
    private readonly chunkSize: number,
    private readonly hashOnly = false,
    private readonly onChunk?: (chunk: ChunkInfo) => void,
  ) {
    super({ highWaterMark: 1024 * 1024 });
  }

  private async openNext(): Promise<void> {
    const index = this.chunks.length;
    const file = path.join(this.outDir, chunkName(index));
    if (!this.hashOnly) this.fh = await fs.open(file, 'w', 0o644);
    this.current = { index, file, size: 0, hash: createHash('sha256') };
  }

  private async closeCurrent(): Promise<void> {
    const cur = this.current;
    if (!cur) return;
    await this.fh?.close();
    this.fh = null;
    this.current = null;
    const chunk: ChunkInfo = { index: cur.index, name: chunkName(cur.index), file: cur.file, size: cur.size, sha256: cur.hash.digest('hex') };
    this.chunks.push(chunk);
    this.onChunk?.(chunk);
  }

  private async writeBuffer(buf: Buffer): Promise<void> {
    let off = 0;
    while (off < buf.length) {
      if (!this.current) await this.openNext();
      const cur = this.current!;
      const size = chunkSizeAt(cur.index, this.chunkSize);
      const n = Math.min(size - cur.size, buf.length - off);
      const part = buf.subarray(off, off + n);
      let written = this.hashOnly ? part.length : 0;
      while (written < part.length) {
        const r = await this.fh!.write(part, written, part.length - written);
        written += r.bytesWritten;
      }
      cur.hash.update(part);
      this.archiveHash.update(part);
      cur.size += n;
      this.archiveBytes += n;
      off += n;
      if (cur.size === size) await this.closeCurrent();
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writeBuffer(chunk).then(() => cb(), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.closeCurrent().then(() => {
      this.archiveSha256 = this.archiveHash.digest('hex');
      cb();
    }, cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const fh = this.fh;
    this.fh = null;
    if (fh) fh.close().then(() => cb(err), () => cb(err));
    else cb(err);
  }
}

async function removeOldOutputs(outDir: string): Promise<void> {
  for (const name of await fs.readdir(outDir)) {
    if (/^chunk-\d+$/.test(name) || name === MANIFEST_NAME || name.startsWith(`${MANIFEST_NAME}.tmp`)) {
      await fs.rm(path.join(outDir, name), { force: true });
    }
  }
}

interface ManifestJson {
  version: number;
  chunkSize: number;
  chunks: { name: string; size: number; sha256: string }[];
  archiveSha256: string;
  archiveBytes: number;
  inputBytes: number;
  fileList: string[];
}

/**
 * Stream `dir` as tar -> gzip -> chunk files in `outDir` (`chunk-000000`, ...), plus `manifest.json`.
 * Deterministic: the same directory content (bytes, modes, mtimes) gives byte-identical chunks.
 * Entries are relative to `dir` ('./', './chroma.sqlite3', ...), so `cat chunk-* | tar xzf - -C X`
 * recreates the tree inside X.
 */
export async function packToChunks(dir: string, outDir: string, chunkSize: number, opts: PackOptions = {}): Promise<PackResult> {
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) {
    throw new UserError(`chunk size ${chunkSize}: must be a positive whole number of bytes, e.g. 8MiB`);
  }
  const { signal, onProgress } = opts;
  const level = opts.gzipLevel ?? DEFAULT_GZIP_LEVEL;
  const root = path.resolve(dir);
  const out = path.resolve(outDir);
  const rel = path.relative(root, out);
  if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))) {
    throw new UserError(`chunk directory ${outDir} is inside the directory being packed (${dir}): choose another work directory`);
  }

  const entries = await walkTree(root, signal);
  const files = entries.filter((e) => e.kind === 'file');
  const fileList = files.map((e) => e.rel);
  const inputBytes = files.reduce((n, e) => n + e.stat.size, 0);
  // Explicit, sorted list of every directory and file: node-tar must not recurse or order by readdir.
  const tarList = entries.map((e) => (e.rel === '.' ? './' : e.rel));

  if (!opts.hashOnly) {
    await fs.mkdir(out, { recursive: true });
    await removeOldOutputs(out);
  }

  // Progress: count the bytes of the tar stream, minus headers/padding is not worth exact accounting;
  // tar overhead is small, so report tar bytes capped at inputBytes and finish with inputBytes.
  let tarBytes = 0;
  let lastReported = -1;
  const collectGarbage = bufferGarbageCollector();
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      tarBytes += chunk.length;
      collectGarbage(chunk.length);
      if (onProgress) {
        const done = Math.min(tarBytes, inputBytes);
        if (done !== lastReported) { lastReported = done; onProgress(done); }
      }
      cb(null, chunk);
    },
  });

  const pack = tar.create(
    {
      cwd: root,
      portable: true,
      noDirRecurse: true,
      gzip: false,
      strict: true,
      // node-tar reads each file in blocks of up to 16 MiB by default; smaller blocks keep the
      // memory in flight (and the RSS high-water mark) small and independent of file sizes.
      maxReadSize: 1024 * 1024,
    },
    tarList,
  );
  const gzip = createParallelGzip({ level, workers: opts.gzipWorkers });
  const writer = new ChunkWriter(out, chunkSize, opts.hashOnly, opts.onChunk);
  try {
    // node-tar's Pack is a Minipass stream (pipe-compatible, respects the destination's backpressure).
    await pipeline(pack as unknown as NodeJS.ReadableStream, counter, gzip, writer, { signal });
  } catch (e) {
    if (!opts.hashOnly) await removeOldOutputs(out).catch(() => {});
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new UserError(`${dir} changed while it was being packed (a file disappeared): pack a snapshot of the persist directory, not the live one`);
    }
    throw e;
  }
  if (onProgress && lastReported !== inputBytes) onProgress(inputBytes);

  const result: PackResult = {
    chunks: writer.chunks,
    archiveSha256: writer.archiveSha256,
    archiveBytes: writer.archiveBytes,
    inputBytes,
    fileList,
  };
  const manifest: ManifestJson = {
    version: MANIFEST_VERSION,
    chunkSize,
    chunks: result.chunks.map((c) => ({ name: c.name, size: c.size, sha256: c.sha256 })),
    archiveSha256: result.archiveSha256,
    archiveBytes: result.archiveBytes,
    inputBytes,
    fileList,
  };
  if (opts.hashOnly) return result;
  const tmp = path.join(out, `${MANIFEST_NAME}.tmp-${process.pid}`);
  await fs.writeFile(tmp, `${JSON.stringify(manifest, null, 2)}\n`);
  await fs.rename(tmp, path.join(out, MANIFEST_NAME));
  return result;
}

/**
 * What identifies an archive before it is made: chunk size, gzip level and every entry's path,
 * kind, size, mode and mtime (the archive holds exactly these; packing is deterministic). A
 * deploy names its remote incoming dir by it, so chunks can be sent while packing goes on and a
 * rerun of the same snapshot finds the chunks already sent; each chunk's sha256 is still checked.
 */
export async function packInputId(dir: string, chunkSize: number, gzipLevel = DEFAULT_GZIP_LEVEL, signal?: AbortSignal): Promise<string> {
  const h = createHash('sha256').update(`chroma-ferry pack v${MANIFEST_VERSION} chunk=${chunkSize} level=${gzipLevel}\n`);
  for (const e of await walkTree(path.resolve(dir), signal)) {
    h.update(`${e.kind} ${e.stat.mode} ${e.kind === 'file' ? e.stat.size : 0} ${Math.floor(e.stat.mtimeMs)} ${e.rel}\n`);
  }
  return h.digest('hex').slice(0, 16);
}

const isHex64 = (s: unknown): s is string => typeof s === 'string' && /^[0-9a-f]{64}$/.test(s);
const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

/** The PackResult recorded in outDir/manifest.json, or null if there is none or it is not a valid manifest. */
export async function readPackManifest(outDir: string): Promise<PackResult | null> {
  const out = path.resolve(outDir);
  let raw: string;
  try {
    raw = await fs.readFile(path.join(out, MANIFEST_NAME), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  let m: Partial<ManifestJson>;
  try {
    m = JSON.parse(raw) as Partial<ManifestJson>;
  } catch {
    return null;
  }
  if (
    m.version !== MANIFEST_VERSION ||
    !Array.isArray(m.chunks) ||
    !isHex64(m.archiveSha256) ||
    !isCount(m.archiveBytes) ||
    !isCount(m.inputBytes) ||
    !Array.isArray(m.fileList) ||
    !m.fileList.every((f) => typeof f === 'string')
  ) {
    return null;
  }
  const chunks: ChunkInfo[] = [];
  for (const [index, c] of m.chunks.entries()) {
    if (!c || c.name !== chunkName(index) || !isCount(c.size) || !isHex64(c.sha256)) return null;
    chunks.push({ index, name: c.name, file: path.join(out, c.name), size: c.size, sha256: c.sha256 });
  }
  if (chunks.reduce((n, c) => n + c.size, 0) !== m.archiveBytes) return null;
  return { chunks, archiveSha256: m.archiveSha256, archiveBytes: m.archiveBytes, inputBytes: m.inputBytes, fileList: m.fileList };
}

/** Re-hash every chunk file (streaming): true when all exist with the recorded sizes and hashes and the whole archive hash matches. */
export async function verifyChunks(result: PackResult): Promise<boolean> {
  const whole = createHash('sha256');
  for (const c of result.chunks) {
    try {
      const st = await fs.stat(c.file);
      if (!st.isFile() || st.size !== c.size) return false;
    } catch {
      return false;
    }
    const h = createHash('sha256');
    for await (const buf of createReadStream(c.file)) {
      h.update(buf as Buffer);
      whole.update(buf as Buffer);
    }
    if (h.digest('hex') !== c.sha256) return false;
  }
  return whole.digest('hex') === result.archiveSha256;
}
