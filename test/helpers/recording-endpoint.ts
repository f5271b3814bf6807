/**
 * Endpoints for the unit layer (no servers): `RecordingSink`, an in-memory target that records
 * every write in order (what a restore step did, to compare with its `plan()`), and
 * `recordingReads`, which wraps a real endpoint and records the collections read from it.
 */
import type { Endpoint } from '../../lib/migrate/endpoints.ts';
import type { CollectionInfo, MigrationRecord } from '../../lib/migrate/types.ts';

export type SinkWrite =
  | { op: 'deleteCollection'; collection: string }
  | { op: 'ensureCollection'; collection: string }
  | { op: 'upsert'; collection: string; records: number };

interface Held {
  info: Omit<CollectionInfo, 'count'>;
  records: Map<string, MigrationRecord>;
}

export class RecordingSink implements Endpoint {
  readonly label = 'recording-sink';
  readonly writes: SinkWrite[] = [];
  readonly collections = new Map<string, Held>();

  constructor(private readonly o: { maxBatch: number; refuse?: (r: MigrationRecord) => string | null }) {
    if (o.refuse) this.refuseRecord = o.refuse;
  }

  refuseRecord?: (r: MigrationRecord) => string | null;

  /** A collection on the target before the test starts (not recorded as a write). */
  seed(info: Omit<CollectionInfo, 'count'>, records: MigrationRecord[]): void {
    this.collections.set(info.name, { info, records: new Map(records.map((r) => [r.id, r])) });
  }

  private infoOf(name: string): CollectionInfo {
    const h = this.collections.get(name)!;
    return { ...h.info, count: h.records.size };
  }

  async listCollections(only?: string[]): Promise<CollectionInfo[]> {
    return [...this.collections.keys()].filter((n) => !only?.length || only.includes(n)).map((n) => this.infoOf(n));
  }

  async *read(info: CollectionInfo, pageSize: number): AsyncIterable<MigrationRecord[]> {
    const all = [...(this.collections.get(info.name)?.records.values() ?? [])];
    for (let i = 0; i < all.length; i += pageSize) yield all.slice(i, i + pageSize);
  }

  async maxBatchSize(): Promise<number> {
    return this.o.maxBatch;
  }

  async existing(names: string[]): Promise<Map<string, CollectionInfo>> {
    return new Map(names.filter((n) => this.collections.has(n)).map((n) => [n, this.infoOf(n)]));
  }

  async ensureCollection(info: Omit<CollectionInfo, 'count'>): Promise<void> {
    this.writes.push({ op: 'ensureCollection', collection: info.name });
    if (!this.collections.has(info.name)) this.collections.set(info.name, { info, records: new Map() });
  }

  async upsert(collection: string, records: MigrationRecord[]): Promise<void> {
    if (records.length > this.o.maxBatch) throw new Error(`upsert of ${records.length} records into ${collection}: above the max batch ${this.o.maxBatch}`);
    for (const r of records) {
      const why = this.refuseRecord?.(r);
      if (why) throw new Error(why);
    }
    this.writes.push({ op: 'upsert', collection, records: records.length });
    const held = this.collections.get(collection);
    if (!held) throw new Error(`upsert into ${collection}: no such collection`);
    for (const r of records) held.records.set(r.id, r);
  }

  async count(collection: string): Promise<number> {
    return this.collections.get(collection)?.records.size ?? 0;
  }

  async get(collection: string, ids: string[]): Promise<MigrationRecord[]> {
    const held = this.collections.get(collection);
    return ids.flatMap((id) => (held?.records.has(id) ? [held.records.get(id)!] : []));
  }

  async deleteCollection(collection: string): Promise<void> {
    this.writes.push({ op: 'deleteCollection', collection });
    this.collections.delete(collection);
  }

  async close(): Promise<void> {}
}

/** The collections read from `e` (and the records each read gave), in order; `e` itself reads as before. */
export function recordingReads(e: Endpoint): { endpoint: Endpoint; reads: { collection: string; records: number }[] } {
  const reads: { collection: string; records: number }[] = [];
  const read = e.read.bind(e);
  const endpoint = Object.assign(Object.create(e) as Endpoint, {
    async *read(info: CollectionInfo, pageSize: number, signal?: AbortSignal): AsyncIterable<MigrationRecord[]> {
      const entry = { collection: info.name, records: 0 };
      reads.push(entry);
      for await (const page of read(info, pageSize, signal)) {
        entry.records += page.length;
        yield page;
      }
    },
  });
  return { endpoint, reads };
}
