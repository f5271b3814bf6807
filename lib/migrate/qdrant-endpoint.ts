/**
 * A Qdrant server as a migration sink (and a source, for the way back), through the official
 * `@qdrant/js-client-rest`. `qdrant+http://HOST:6333` or `qdrant+https://...`; the API key comes
 * from QDRANT_API_KEY only (never a flag) and is registered as a secret, so it is redacted from
 * every log line.
 *
 * Mapping (README "Qdrant"):
 * - one Qdrant collection per target collection, one unnamed vector: size from the data, distance
 *   from the Chroma space (l2 -> Euclid, cosine -> Cosine, ip -> Dot);
 * - point id: the Chroma id when it is a UUID, else UUID v5 of it in CHROMA_ID_NAMESPACE; the
 *   original id is always kept in the payload (`chroma_id`), so the way back restores it;
 * - payload: the metadata fields at top level, the document under `document`; for Cosine
 *   collections (which store unit vectors) the vector's norm under `chroma_norm`, so the way back
 *   gives the original embedding. Metadata keys equal to these reserved keys are refused.
 */
import { QdrantClient } from '@qdrant/js-client-rest';
import { v5 as uuidv5, validate as isUuid } from 'uuid';
import pRetry from 'p-retry';
import { UserError } from '../common/errors.ts';
import { READ_RETRY } from './chroma-endpoint.ts';
import { registerSecret } from '../report/secrets.ts';
import { QDRANT_RULES, type TargetRules } from './target-rules.ts';
import type { CollectionInfo, DistanceSpace, MigrationRecord, MigrationSink, MigrationSource, RecordMetadata } from './types.ts';

/** Fixed namespace of the UUID v5 point ids (documented in README; never change it: re-runs must map to the same points). */
export const CHROMA_ID_NAMESPACE = '6f1c7d2e-3a4b-5c6d-8e9f-0a1b2c3d4e5f';
export const PAYLOAD_DOCUMENT = 'document';
export const PAYLOAD_CHROMA_ID = 'chroma_id';
export const PAYLOAD_NORM = 'chroma_norm';
const RESERVED = [PAYLOAD_DOCUMENT, PAYLOAD_CHROMA_ID, PAYLOAD_NORM];

type QdrantDistance = 'Euclid' | 'Cosine' | 'Dot' | 'Manhattan';
const TO_QDRANT: Record<DistanceSpace, QdrantDistance> = { l2: 'Euclid', cosine: 'Cosine', ip: 'Dot' };
const FROM_QDRANT: Partial<Record<QdrantDistance, DistanceSpace>> = { Euclid: 'l2', Cosine: 'cosine', Dot: 'ip' };

export function isQdrantUrl(value: string): boolean {
  return /^qdrant\+https?:\/\//i.test(value);
}

/** The point id for a Chroma id: the UUID itself (lowercase), or a UUID v5 of it. */
export function pointIdFor(chromaId: string): string {
  return isUuid(chromaId) ? chromaId.toLowerCase() : uuidv5(chromaId, CHROMA_ID_NAMESPACE);
}

/** Write ordering of a Qdrant cluster (README "Qdrant clusters"); Qdrant's default is weak. */
export const QDRANT_ORDERINGS = ['weak', 'medium', 'strong'] as const;
export type QdrantOrdering = (typeof QDRANT_ORDERINGS)[number];

/** Cluster settings: used when a collection is created, and on every write. */
export interface QdrantOptions {
  /** `--qdrant-shards`: shard_number of collections the migration creates (Qdrant's default: one per node). */
  shards?: number;
  /** `--qdrant-replication`: replication_factor of collections the migration creates (Qdrant's default: 1). */
  replication?: number;
  /** `--qdrant-ordering`: the `ordering` of every upsert (absent: Qdrant's default, weak). */
  ordering?: QdrantOrdering;
}

export class QdrantEndpoint implements MigrationSource, MigrationSink {
  /** Staged imports go into run-stamped collections; the cutover switches an alias (lib/migrate/staging.ts). */
  readonly cutoverKind = 'alias';
  readonly label: string;
  private readonly client: QdrantClient;
  private readonly spaces = new Map<string, DistanceSpace>();

  constructor(value: string, apiKey = process.env.QDRANT_API_KEY, private readonly cluster: QdrantOptions = {}) {
    const url = value.replace(/^qdrant\+/i, '').replace(/\/+$/, '');
    this.label = `qdrant+${url}`;
    if (apiKey) registerSecret(apiKey);
    this.client = new QdrantClient({ url, apiKey: apiKey || undefined, checkCompatibility: false });
  }

  async connect(flag: string): Promise<void> {
    try {
      await this.client.versionInfo();
      await this.client.getCollections();
    } catch (e) {
      const status = (e as { status?: number }).status;
      if (status === 401 || status === 403) throw new UserError(`${flag} ${this.label}: the server refused the API key; set QDRANT_API_KEY to a valid key`);
      throw new UserError(`${flag} ${this.label}: no Qdrant server answers there (${errorText(e)}); check the URL and that the server runs`);
    }
  }

  /** Alias -> collection. */
  private async aliases(): Promise<Map<string, string>> {
    return new Map((await this.client.getAliases()).aliases.map((a) => [a.alias_name, a.collection_name]));
  }

  /** The names applications use: aliases, and the collections no alias points at (a migrated collection is listed by its alias). */
  private async names(): Promise<string[]> {
    const aliases = await this.aliases();
    const behind = new Set(aliases.values());
    const plain = (await this.client.getCollections()).collections.map((c) => c.name).filter((n) => !behind.has(n));
    return [...new Set([...aliases.keys(), ...plain])].sort();
  }

  async aliasTarget(name: string): Promise<string | null> {
    return (await this.aliases()).get(name) ?? null;
  }

  async switchAlias(name: string, collection: string | null): Promise<void> {
    await this.client.updateCollectionAliases({
      actions: [{ delete_alias: { alias_name: name } }, ...(collection ? [{ create_alias: { alias_name: name, collection_name: collection } }] : [])],
    });
  }

  async listCollections(only?: string[]): Promise<CollectionInfo[]> {
    const names = await this.names();
    if (only?.length) {
      const missing = only.filter((n) => !names.includes(n));
      if (missing.length) throw new UserError(`no collection ${missing.join(', ')} on ${this.label} (it has: ${names.join(', ') || 'none'}); check --filter-collection`);
    }
    const out: CollectionInfo[] = [];
    for (const name of only?.length ? only : names) out.push(await this.info(name));
    return out;
  }

  private async info(name: string): Promise<CollectionInfo> {
    const c = await this.client.getCollection(name);
    const vectors = c.config.params.vectors as { size?: number; distance?: QdrantDistance } | undefined;
    if (!vectors || typeof vectors.size !== 'number' || !vectors.distance) {
      throw new UserError(`collection ${name} on ${this.label} uses named or sparse vectors: chroma-ferry moves collections with one unnamed vector`);
    }
    const space = FROM_QDRANT[vectors.distance];
    if (!space) throw new UserError(`collection ${name} on ${this.label} uses ${vectors.distance} distance, which Chroma has no space for`);
    this.spaces.set(name, space);
    const count = (await this.client.count(name, { exact: true })).count;
    return { name, metadata: null, space, count, dimension: vectors.size };
  }

  async *read(info: CollectionInfo, pageSize: number, signal?: AbortSignal): AsyncIterable<MigrationRecord[]> {
    // Scroll is keyset paging by point id: stable while others write.
    let offset: string | number | undefined;
    for (;;) {
      signal?.throwIfAborted();
      const page = await pRetry(() => this.client.scroll(info.name, { limit: pageSize, offset, with_payload: true, with_vector: true }), READ_RETRY);
      const records = page.points.map((p) => fromPoint(p.id, p.vector as number[] | undefined, (p.payload ?? {}) as Record<string, unknown>));
      if (records.length) yield records;
      const next = page.next_page_offset as string | number | null | undefined;
      if (next === null || next === undefined) return;
      offset = next;
    }
  }

  async maxBatchSize(): Promise<number> {
    // Qdrant has no record limit per write, only a request size limit (32 MiB by default).
    return 512;
  }

  async existing(names: string[]): Promise<Map<string, CollectionInfo>> {
    const aliases = await this.aliases();
    const have = new Set([...(await this.client.getCollections()).collections.map((c) => c.name), ...aliases.keys()]);
    const out = new Map<string, CollectionInfo>();
    for (const n of names) if (have.has(n)) out.set(n, await this.info(n));
    return out;
  }

  async ensureCollection(info: Omit<CollectionInfo, 'count'>): Promise<void> {
    const distance = TO_QDRANT[info.space];
    const have = (await this.existing([info.name])).get(info.name);
    if (have) {
      if (have.space !== info.space || (info.dimension !== null && have.dimension !== info.dimension)) {
        throw new UserError(
          `collection ${info.name} exists on ${this.label} with size ${have.dimension} and distance ${TO_QDRANT[have.space]}; ` +
            `the migrated records need size ${info.dimension ?? '?'} and distance ${distance}: migrate into another name (--rename ${info.name}=NEW) or delete it first`,
        );
      }
      return;
    }
    if (!info.dimension) throw new Error(`collection ${info.name}: the vector size is unknown (no record with an embedding)`);
    await this.client.createCollection(info.name, {
      vectors: { size: info.dimension, distance },
      ...(this.cluster.shards ? { shard_number: this.cluster.shards } : {}),
      ...(this.cluster.replication ? { replication_factor: this.cluster.replication } : {}),
    });
    this.spaces.set(info.name, info.space);
  }

  async upsert(collection: string, records: MigrationRecord[]): Promise<void> {
    const space = this.spaces.get(collection) ?? (await this.info(collection)).space;
    const points = records.map((r) => toPoint(r, space));
    // wait: the answer comes once the points are applied, so a checkpointed batch is stored.
    await this.client.upsert(collection, { wait: true, points, ...(this.cluster.ordering ? { ordering: this.cluster.ordering } : {}) });
  }

  async count(collection: string): Promise<number> {
    return (await this.client.count(collection, { exact: true })).count;
  }

  async get(collection: string, ids: string[]): Promise<MigrationRecord[]> {
    const points = await this.client.retrieve(collection, { ids: ids.map(pointIdFor), with_payload: true, with_vector: true });
    return points.map((p) => fromPoint(p.id, p.vector as number[] | undefined, (p.payload ?? {}) as Record<string, unknown>));
  }

  /** Delete a collection; by an alias name, the collection behind it (its aliases go with it). */
  async deleteCollection(collection: string): Promise<void> {
    await this.client.deleteCollection((await this.aliases()).get(collection) ?? collection);
  }

  refuseRecord(r: MigrationRecord): string | null {
    return reservedKeyClash(r);
  }

  async targetRules(): Promise<TargetRules> {
    return QDRANT_RULES;
  }

  async close(): Promise<void> {}
}

/** Why a record cannot become a point as it is: a metadata key equal to a reserved payload key. */
function reservedKeyClash(r: MigrationRecord): string | null {
  const clash = RESERVED.find((k) => k in (r.metadata ?? {}));
  return clash
    ? `record ${r.id}: metadata key "${clash}" collides with a payload key chroma-ferry reserves on Qdrant (${RESERVED.join(', ')}); rename the field with a --transform`
    : null;
}

function toPoint(r: MigrationRecord, space: DistanceSpace): { id: string; vector: number[]; payload: Record<string, unknown> } {
  const clash = reservedKeyClash(r);
  if (clash) throw new UserError(clash);
  const meta = r.metadata ?? {};
  const payload: Record<string, unknown> = { ...meta, [PAYLOAD_CHROMA_ID]: r.id };
  if (r.document !== null) payload[PAYLOAD_DOCUMENT] = r.document;
  const vector = r.embedding!;
  if (space === 'cosine') payload[PAYLOAD_NORM] = Math.sqrt(vector.reduce((s, x) => s + x * x, 0));
  return { id: pointIdFor(r.id), vector, payload };
}

function fromPoint(id: string | number, vector: number[] | undefined, payload: Record<string, unknown>): MigrationRecord {
  const { [PAYLOAD_CHROMA_ID]: chromaId, [PAYLOAD_DOCUMENT]: document, [PAYLOAD_NORM]: norm, ...rest } = payload;
  const embedding = vector ? (typeof norm === 'number' ? vector.map((x) => x * norm) : [...vector]) : null;
  return {
    id: typeof chromaId === 'string' ? chromaId : String(id),
    embedding,
    document: typeof document === 'string' ? document : null,
    metadata: Object.keys(rest).length ? (rest as RecordMetadata) : null,
  };
}

function errorText(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const cause = (e as { cause?: { code?: string } }).cause?.code;
  return cause ? `${msg} (${cause})` : msg;
}
