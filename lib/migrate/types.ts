/**
 * The records and collections the migration pipeline moves (source -> transform -> validate ->
 * sink), independent of where they come from: a Chroma server, a persist dir or a .jsonl export.
 */
import type { TargetRules } from './target-rules.ts';

export type MetadataValue = string | number | boolean | null;
export type RecordMetadata = Record<string, MetadataValue>;

export interface MigrationRecord {
  id: string;
  embedding: number[] | null;
  document: string | null;
  metadata: RecordMetadata | null;
}

export type DistanceSpace = 'l2' | 'cosine' | 'ip';

export interface CollectionInfo {
  name: string;
  /** Collection metadata, without the `hnsw:*` keys (those are configuration). */
  metadata: RecordMetadata | null;
  /** Distance space, from the configuration or `hnsw:space` (Chroma's default: l2). */
  space: DistanceSpace;
  /** The source's HNSW index settings (ef_construction, max_neighbors, ...), recreated on the target. */
  hnsw?: Record<string, number>;
  count: number;
  dimension: number | null;
}

/** Where records are read from. Opened read-only: a collection is never created on a source. */
export interface MigrationSource {
  readonly label: string;
  /** The collections to migrate; a name in `only` that does not exist is a UserError. */
  listCollections(only?: string[]): Promise<CollectionInfo[]>;
  /** Every record of a collection, in pages of at most `pageSize` (never the whole collection in memory). */
  read(collection: CollectionInfo, pageSize: number, signal?: AbortSignal): AsyncIterable<MigrationRecord[]>;
  close(): Promise<void>;
}

/** Where records are written. */
export interface MigrationSink {
  readonly label: string;
  /** The largest batch the sink accepts in one write. */
  maxBatchSize(): Promise<number>;
  /** Collections that exist on the sink now (name -> info), for the backup and the refusals. */
  existing(names: string[]): Promise<Map<string, CollectionInfo>>;
  /** Create the collection with this space and metadata unless it exists (with the same space). */
  ensureCollection(info: Omit<CollectionInfo, 'count'>): Promise<void>;
  /** Insert or replace records by id (a resumed run never duplicates). */
  upsert(collection: string, records: MigrationRecord[], signal?: AbortSignal): Promise<void>;
  count(collection: string): Promise<number>;
  /** Records by id (verify); missing ids are absent from the result. */
  get(collection: string, ids: string[]): Promise<MigrationRecord[]>;
  deleteCollection(collection: string): Promise<void>;
  /** Why this sink cannot store the record as it is (checked before any write), or null. */
  refuseRecord?(record: MigrationRecord): string | null;
  /** What the sink accepts (collection names, metadata, sizes), applied in the validate phase; absent: anything. */
  targetRules?(): Promise<TargetRules>;
  close(): Promise<void>;
}
