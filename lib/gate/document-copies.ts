/**
 * Copies of one document in one collection, counted on both sides without holding every document:
 * each document's digest is spilled to a bucket file by digest, and the buckets are counted one at
 * a time (the duplicate check).
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

const FLUSH_LINES = 2000;
/** Ids kept per duplicated document, for the details. */
const IDS_KEPT = 3;

export class DocumentCopies {
  private readonly files: string[];
  private readonly pending: string[][];
  private readonly created = new Set<number>();

  constructor(dir: string, readonly buckets: number) {
    this.files = Array.from({ length: buckets }, (_, b) => path.join(dir, `documents-${b}.txt`));
    this.pending = Array.from({ length: buckets }, () => []);
  }

  /** A document of collection `tag`, expected (side 0) or in the new database (side 1). */
  async add(side: 0 | 1, tag: number, document: string | null, id: string): Promise<void> {
    if (!document) return;
    const digest = crypto.createHash('sha1').update(document).digest();
    const b = digest.readUInt32LE(0) % this.buckets;
    this.pending[b]!.push(JSON.stringify([side, tag, digest.toString('base64'), id]));
    if (this.pending[b]!.length >= FLUSH_LINES) await this.flush(b);
  }

  private async flush(b: number): Promise<void> {
    const lines = this.pending[b]!;
    if (!lines.length) return;
    this.pending[b] = [];
    await fs.appendFile(this.files[b]!, `${lines.join('\n')}\n`);
    this.created.add(b);
  }

  /** Every document seen more than once in a collection on either side: its copies on each side and a few of the new database's ids. */
  async *copies(): AsyncIterable<{ tag: number; expected: number; actual: number; ids: string[] }> {
    for (let b = 0; b < this.buckets; b++) await this.flush(b);
    for (let b = 0; b < this.buckets; b++) {
      if (!this.created.has(b)) continue;
      const seen = new Map<string, { tag: number; n: [number, number]; ids: string[] }>();
      for (const line of (await fs.readFile(this.files[b]!, 'utf8')).split('\n')) {
        if (!line) continue;
        const [side, tag, digest, id] = JSON.parse(line) as [0 | 1, number, string, string];
        const key = `${tag}:${digest}`;
        let e = seen.get(key);
        if (!e) seen.set(key, (e = { tag, n: [0, 0], ids: [] }));
        e.n[side]++;
        if (side === 1 && e.ids.length < IDS_KEPT) e.ids.push(id);
      }
      for (const e of seen.values()) if (e.n[0] > 1 || e.n[1] > 1) yield { tag: e.tag, expected: e.n[0], actual: e.n[1], ids: e.ids };
    }
  }
}
