/**
 * A portable export file as a migration source and sink (`file.jsonl`): one JSON object per line,
 *
 *   {"type":"chroma-ferry-export","version":1,"createdAt":"...","touched":[...]}    header, first line
 *   {"type":"collection","name":"books","space":"cosine","metadata":{...},"dimension":768}   before its records
 *
 * Every collection has its line, an empty one too (it has no records); `dimension` (the vector
 * size, when known) is absent in files written before it was added, which read as before.
 *   {"type":"record","collection":"books","id":"..","embedding":[..],"document":"..","metadata":{..}}
 *
 * Read as a stream, never whole. Appending is the only write; an id repeated by a resumed run is
 * read once (the first line wins: a repeat carries the same record).
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import { UserError } from '../common/errors.ts';
import { IdSet } from './id-set.ts';
import { ANY_JSON, type TargetRules } from './target-rules.ts';
import type { TransformRecord } from './transform-record.ts';
import type { CollectionInfo, DistanceSpace, MigrationRecord, MigrationSink, MigrationSource, RecordMetadata } from './types.ts';

export const EXPORT_FORMAT = 'chroma-ferry-export';

export interface ExportHeader {
  type: typeof EXPORT_FORMAT;
  version: 1;
  createdAt: string;
  /** Collections a migration was about to write (a backup's restore removes those not in the file). */
  touched?: string[];
  /** The transform of the migration this file is the backup of (the gate validates with it). */
  transform?: TransformRecord;
}

type Line =
  | ExportHeader
  | { type: 'collection'; name: string; space: DistanceSpace; hnsw?: Record<string, number>; metadata: RecordMetadata | null; dimension?: number | null }
  | { type: 'record'; collection: string; id: string; embedding: number[] | null; document: string | null; metadata: RecordMetadata | null };

export class JsonlEndpoint implements MigrationSource, MigrationSink {
  readonly label: string;
  private out?: WriteStream;
  private readonly declared = new Set<string>();

  constructor(readonly file: string) {
    this.label = file;
  }

  /** Source: the file exists and starts with an export header. */
  async openForReading(flag: string): Promise<void> {
    const h = await this.header().catch((e: NodeJS.ErrnoException) => {
      throw new UserError(`${flag} ${this.file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
    });
    if (!h) throw new UserError(`${flag} ${this.file}: not a chroma-ferry export (the first line is not its header); pass a file written by migrate or a backup`);
  }

  /** Sink: a new file (or, resuming, the one being written); the header is written first. */
  async openForWriting(o: { resume: boolean; touched?: string[]; transform?: TransformRecord }): Promise<void> {
    const exists = await fs.stat(this.file).then(() => true, () => false);
    if (exists && !o.resume) throw new UserError(`${this.file} already exists: choose a new file, remove it, or pass --resume to continue writing it`);
    await fs.mkdir(path.dirname(path.resolve(this.file)), { recursive: true });
    if (exists) for (const c of await this.listCollections()) this.declared.add(c.name);
    this.out = createWriteStream(this.file, { flags: 'a' });
    if (!exists) await this.write({ type: EXPORT_FORMAT, version: 1, createdAt: new Date().toISOString(), touched: o.touched, transform: o.transform });
  }

  async header(): Promise<ExportHeader | null> {
    for await (const line of this.lines()) return line.type === EXPORT_FORMAT ? line : null;
    return null;
  }

  async listCollections(only?: string[]): Promise<CollectionInfo[]> {
    const infos = new Map<string, CollectionInfo>();
    const ids = new Map<string, IdSet>();
    for await (const line of this.lines()) {
      if (line.type === 'collection' && !infos.has(line.name)) {
        infos.set(line.name, { name: line.name, space: line.space ?? 'l2', hnsw: line.hnsw, metadata: line.metadata ?? null, count: 0, dimension: line.dimension ?? null });
        ids.set(line.name, new IdSet());
      } else if (line.type === 'record') {
        const info = infos.get(line.collection);
        if (!info) throw new UserError(`${this.file}: record ${line.id} of collection ${line.collection} comes before the collection's line`);
        if (!ids.get(line.collection)!.add(line.id)) continue;
        info.count++;
        if (info.dimension === null && line.embedding) info.dimension = line.embedding.length;
      }
    }
    if (only?.length) {
      const missing = only.filter((n) => !infos.has(n));
      if (missing.length) throw new UserError(`no collection ${missing.join(', ')} in ${this.file} (it has: ${[...infos.keys()].join(', ') || 'none'}); check --filter-collection`);
      return only.map((n) => infos.get(n)!);
    }
    return [...infos.values()];
  }

  async *read(info: CollectionInfo, pageSize: number, signal?: AbortSignal): AsyncIterable<MigrationRecord[]> {
    const seen = new IdSet();
    let page: MigrationRecord[] = [];
    for await (const line of this.lines()) {
      if (line.type !== 'record' || line.collection !== info.name || !seen.add(line.id)) continue;
      page.push({ id: line.id, embedding: line.embedding ?? null, document: line.document ?? null, metadata: line.metadata ?? null });
      if (page.length >= pageSize) {
        signal?.throwIfAborted();
        yield page;
        page = [];
      }
    }
    if (page.length) yield page;
  }

  async maxBatchSize(): Promise<number> {
    return 10_000;
  }

  /** An export holds any JSON; the database it is imported into applies its own rules then. */
  async targetRules(): Promise<TargetRules> {
    return ANY_JSON;
  }

  async existing(names: string[]): Promise<Map<string, CollectionInfo>> {
    const exists = await fs.stat(this.file).then(() => true, () => false);
    if (!exists) return new Map();
    const want = new Set(names);
    return new Map((await this.listCollections()).filter((c) => want.has(c.name)).map((c) => [c.name, c]));
  }

  async ensureCollection(info: Omit<CollectionInfo, 'count'>): Promise<void> {
    if (this.declared.has(info.name)) return;
    this.declared.add(info.name);
    await this.write({ type: 'collection', name: info.name, space: info.space, hnsw: info.hnsw, metadata: info.metadata, ...(info.dimension ? { dimension: info.dimension } : {}) });
  }

  async upsert(collection: string, records: MigrationRecord[]): Promise<void> {
    const text = records.map((r) => JSON.stringify({ type: 'record', collection, id: r.id, embedding: r.embedding, document: r.document, metadata: r.metadata })).join('\n');
    await this.writeText(`${text}\n`);
  }

  async count(collection: string): Promise<number> {
    await this.flush();
    return (await this.listCollections()).find((c) => c.name === collection)?.count ?? 0;
  }

  async get(collection: string, ids: string[]): Promise<MigrationRecord[]> {
    await this.flush();
    const want = new Set(ids);
    const out = new Map<string, MigrationRecord>();
    for await (const line of this.lines()) {
      if (line.type === 'record' && line.collection === collection && want.has(line.id) && !out.has(line.id)) {
        out.set(line.id, { id: line.id, embedding: line.embedding, document: line.document, metadata: line.metadata });
      }
    }
    return [...out.values()];
  }

  async deleteCollection(): Promise<void> {
    throw new UserError(`${this.file} is an export file: collections are not deleted from it; write a new file instead`);
  }

  async close(): Promise<void> {
    const out = this.out;
    this.out = undefined;
    if (out) await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
  }

  private async write(line: Line): Promise<void> {
    await this.writeText(`${JSON.stringify(line)}\n`);
  }

  private writeText(text: string): Promise<void> {
    const out = this.out;
    if (!out) throw new Error(`${this.file} is not open for writing`);
    return new Promise((resolve, reject) => {
      out.write(text, (e) => (e ? reject(e) : resolve()));
    });
  }

  private async flush(): Promise<void> {
    if (this.out) await new Promise<void>((resolve) => { if (this.out!.writableNeedDrain) this.out!.once('drain', resolve); else resolve(); });
  }

  private async *lines(): AsyncIterable<Line> {
    const rl = readline.createInterface({ input: createReadStream(this.file), crlfDelay: Infinity });
    let n = 0;
    for await (const text of rl) {
      n++;
      if (!text.trim()) continue;
      try {
        yield JSON.parse(text) as Line;
      } catch {
        throw new UserError(`${this.file} line ${n}: not JSON (a truncated or edited export?)`);
      }
    }
  }
}
