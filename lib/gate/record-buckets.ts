/**
 * Records spilled to disk in buckets by a hash of their id, read back one bucket at a time: the
 * two sides of the gate's hash join (expected and new records) meet bucket by bucket, so memory
 * holds one bucket of each side, never a whole database. Binary frames, not JSON: an embedding is
 * written as raw float64 (exact for any JS number) and read back with one copy.
 *
 * Frame: u32 header length, i32 dimension (-1: no embedding), header (JSON [tag, id, document,
 * metadata]), dimension x float64 LE.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { MigrationRecord, RecordMetadata } from '../migrate/types.ts';

/** A record read back from a bucket; `tag` says which collection it belongs to. */
export interface BucketRecord {
  tag: number;
  id: string;
  document: string | null;
  metadata: RecordMetadata | null;
  embedding: Float64Array | null;
}

/** Records per bucket the gate aims at (of each side), and the most bucket files per side. */
export const RECORDS_PER_BUCKET = 2000;
export const MAX_BUCKETS = 256;
const FLUSH_BYTES = 64 * 1024;

/** Buckets for about `records` records per side. */
export function bucketCount(records: number): number {
  return Math.min(MAX_BUCKETS, Math.max(1, Math.ceil(records / RECORDS_PER_BUCKET)));
}

/** FNV-1a of a string: the bucket of an id (stable across runs and sides). */
export function idHash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

export class RecordBuckets {
  private readonly pending: Buffer[][];
  private readonly pendingBytes: number[];
  private readonly files: string[];
  private readonly created = new Set<number>();
  records = 0;

  /** `dir` exists and belongs to this run; files are named `<side>-<bucket>.bin`. */
  constructor(dir: string, side: string, readonly buckets: number) {
    this.files = Array.from({ length: buckets }, (_, b) => path.join(dir, `${side}-${b}.bin`));
    this.pending = Array.from({ length: buckets }, () => []);
    this.pendingBytes = Array(buckets).fill(0);
  }

  bucketOf(id: string): number {
    return idHash(id) % this.buckets;
  }

  async add(tag: number, r: MigrationRecord): Promise<void> {
    const b = this.bucketOf(r.id);
    const header = Buffer.from(JSON.stringify([tag, r.id, r.document ?? null, r.metadata ?? null]));
    const dim = r.embedding ? r.embedding.length : -1;
    const head = Buffer.allocUnsafe(8);
    head.writeUInt32LE(header.length, 0);
    head.writeInt32LE(dim, 4);
    const frame = [head, header];
    if (r.embedding) frame.push(Buffer.from(Float64Array.from(r.embedding).buffer));
    this.pending[b]!.push(...frame);
    this.pendingBytes[b]! += 8 + header.length + Math.max(0, dim) * 8;
    this.records++;
    if (this.pendingBytes[b]! >= FLUSH_BYTES) await this.flush(b);
  }

  private async flush(b: number): Promise<void> {
    const chunks = this.pending[b]!;
    if (!chunks.length) return;
    this.pending[b] = [];
    this.pendingBytes[b] = 0;
    await fs.appendFile(this.files[b]!, Buffer.concat(chunks));
    this.created.add(b);
  }

  /** Everything added is on disk. */
  async finish(): Promise<void> {
    for (let b = 0; b < this.buckets; b++) await this.flush(b);
  }

  /** The records of one bucket, in the order they were added. */
  async read(b: number): Promise<BucketRecord[]> {
    if (!this.created.has(b)) return [];
    const buf = await fs.readFile(this.files[b]!);
    const out: BucketRecord[] = [];
    let o = 0;
    while (o < buf.length) {
      const hlen = buf.readUInt32LE(o);
      const dim = buf.readInt32LE(o + 4);
      o += 8;
      const [tag, id, document, metadata] = JSON.parse(buf.toString('utf8', o, o + hlen)) as [number, string, string | null, RecordMetadata | null];
      o += hlen;
      let embedding: Float64Array | null = null;
      if (dim >= 0) {
        embedding = new Float64Array(dim);
        buf.copy(Buffer.from(embedding.buffer), 0, o, o + dim * 8);
        o += dim * 8;
      }
      out.push({ tag, id, document, metadata, embedding });
    }
    return out;
  }
}
