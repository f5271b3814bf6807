/**
 * A Chroma 1.x server (v2 API) as a migration source and sink, through the `chromadb` client.
 * As a source it only reads: collections are fetched by name, never created. Paging is by
 * offset, which is stable only while nobody writes: the count is compared before and after and
 * ids are checked for repeats, so a concurrent writer is reported, never silently absorbed.
 */
import type { ChromaClient, Collection, Metadata } from 'chromadb';
import { chromaToken, tokenVariables, type ChromaSide } from '../chroma/api-token.ts';
import { chromaClientFor, type ChromaScope } from '../chroma/client.ts';
import { ChromaAuthError, heartbeat } from '../chroma/http.ts';
import pRetry from 'p-retry';
import { awaitedLater } from '../common/awaited-later.ts';
import { UserError } from '../common/errors.ts';
import { IdSet } from './id-set.ts';
import { chromaRules, versionAtLeast, type TargetRules } from './target-rules.ts';
import type { CollectionInfo, DistanceSpace, MigrationRecord, MigrationSink, MigrationSource, RecordMetadata } from './types.ts';

/** The source changed while it was being read (offset paging would miss or repeat records). */
export class SourceChangedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SourceChangedError';
  }
}

/** The first Chroma release that stores lists as metadata values (metadb migration 6, `embedding_metadata_array`). */
export const CHROMA_LISTS_SINCE = '1.5.0';

/** Reads are retried too: a page that fails on a transient error is fetched again. */
export const READ_RETRY = { retries: 3, minTimeout: 200, factor: 2 } as const;

export class ChromaEndpoint implements MigrationSource, MigrationSink {
  /** Staged imports are cut over by renaming collections (lib/migrate/staging.ts). */
  readonly cutoverKind = 'rename';
  private readonly client: ChromaClient;
  private readonly collections = new Map<string, Collection>();
  /** Sent as x-chroma-token; null for a server the tool started itself. */
  private readonly token: string | null;

  /**
   * `side`: a server the user named, with that side's token (lib/chroma/api-token.ts); absent: one the tool started.
   * `scope`: the tenant and database (lib/chroma/database-scope.ts resolves and checks them).
   */
  constructor(
    readonly url: string,
    readonly label = url,
    private readonly side?: ChromaSide,
    scope?: ChromaScope,
  ) {
    this.token = side ? chromaToken(side) ?? null : null;
    this.client = chromaClientFor(url, this.token, scope);
  }

  /** Reachable, and speaks the v2 API; a Chroma 0.x (v1) server is named as such. */
  async connect(flag: string): Promise<void> {
    let api: string;
    try {
      api = await heartbeat(this.url, 10_000, this.token);
    } catch (e) {
      if (e instanceof ChromaAuthError) {
        throw new UserError(`${flag} ${this.label}: the server ${this.token ? 'refused the token' : 'wants a token'}; put it in ${tokenVariables(this.side)} (sent as the x-chroma-token header)`);
      }
      throw new UserError(`${flag} ${this.label}: no Chroma server answers there (${e instanceof Error ? e.message : String(e)}); check the URL and that the server runs`);
    }
    if (api === 'v1') {
      throw new UserError(
        `${flag} ${this.label}: this is a Chroma 0.4-0.6 server (v1 API only); migrate speaks the v2 API of Chroma 1.x. ` +
          'Upgrade the server (its persist dir can then be passed as a directory), or export it with the 0.x client to .jsonl',
      );
    }
  }

  async listCollections(only?: string[]): Promise<CollectionInfo[]> {
    const all: Collection[] = [];
    for (let offset = 0; ; offset += 100) {
      const page = await this.client.listCollections({ limit: 100, offset });
      all.push(...page);
      if (page.length < 100) break;
    }
    const byName = new Map(all.map((c) => [c.name, c]));
    if (only?.length) {
      const missing = only.filter((n) => !byName.has(n));
      if (missing.length) {
        throw new UserError(`no collection ${missing.join(', ')} on ${this.label} (it has: ${[...byName.keys()].sort().join(', ') || 'none'}); check --filter-collection`);
      }
    }
    const chosen = only?.length ? only.map((n) => byName.get(n)!) : [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
    const out: CollectionInfo[] = [];
    for (const c of chosen) {
      this.collections.set(c.name, c);
      out.push({ name: c.name, metadata: userMetadata(c.metadata), space: spaceOf(c), hnsw: hnswSettings(c), count: await c.count(), dimension: null });
    }
    return out;
  }

  async *read(info: CollectionInfo, pageSize: number, signal?: AbortSignal): AsyncIterable<MigrationRecord[]> {
    const col = await this.collection(info.name);
    const before = await col.count();
    const seen = new IdSet();
    const fetchPage = (offset: number) => {
      // Awaited below; a consumer that stops early must not leave it unhandled.
      return awaitedLater(pRetry(() => col.get({ limit: pageSize, offset, include: ['embeddings', 'documents', 'metadatas'] as never }), READ_RETRY));
    };
    // One page ahead: the server reads the next page while the caller writes this one.
    let next = before > 0 ? fetchPage(0) : undefined;
    for (let offset = 0; offset < before; offset += pageSize) {
      signal?.throwIfAborted();
      const r = await next!;
      next = offset + pageSize < before ? fetchPage(offset + pageSize) : undefined;
      const page: MigrationRecord[] = [];
      for (let i = 0; i < r.ids.length; i++) {
        const id = r.ids[i]!;
        if (!seen.add(id)) throw new SourceChangedError(`${info.name}: record ${id} came back twice while paging (the collection is being written to)`);
        const emb = r.embeddings?.[i];
        // Passed through as the client parsed it: no copy per record.
        page.push({ id, embedding: emb ? (Array.isArray(emb) ? emb : Array.from(emb)) : null, document: r.documents?.[i] ?? null, metadata: (r.metadatas?.[i] as RecordMetadata | null) ?? null });
      }
      if (page.length) yield page;
      if (r.ids.length < pageSize && offset + r.ids.length < before) {
        throw new SourceChangedError(`${info.name}: ${offset + r.ids.length} records readable, ${before} counted at the start (the collection is being written to)`);
      }
    }
    const after = await col.count();
    if (after !== before || seen.size !== before) {
      throw new SourceChangedError(`${info.name}: ${before} records at the start of the export, ${after} at its end (the collection is being written to)`);
    }
  }

  async maxBatchSize(): Promise<number> {
    return this.client.getMaxBatchSize();
  }

  /** Chroma's rules for names and metadata; lists as metadata values from server 1.5 on (lib/migrate/target-rules.ts). */
  async targetRules(): Promise<TargetRules> {
    const version = await this.client.version();
    return chromaRules({ lists: versionAtLeast(version, CHROMA_LISTS_SINCE), version });
  }

  async existing(names: string[]): Promise<Map<string, CollectionInfo>> {
    const all = await this.listCollections();
    const want = new Set(names);
    return new Map(all.filter((c) => want.has(c.name)).map((c) => [c.name, c]));
  }

  async ensureCollection(info: Omit<CollectionInfo, 'count'>): Promise<void> {
    const have = (await this.existing([info.name])).get(info.name);
    if (have) {
      if (have.space !== info.space) {
        throw new UserError(`collection ${info.name} exists on ${this.label} with distance ${have.space}, the migrated one needs ${info.space}: rename it or delete it first`);
      }
      return;
    }
    const col = await this.client.createCollection({
      name: info.name,
      embeddingFunction: null,
      configuration: { hnsw: { ...info.hnsw, space: info.space } },
      metadata: info.metadata && Object.keys(info.metadata).length ? (info.metadata as Metadata) : undefined,
    });
    this.collections.set(info.name, col);
  }

  async upsert(collection: string, records: MigrationRecord[]): Promise<void> {
    const col = await this.collection(collection);
    const withDocs = records.some((r) => r.document !== null);
    const withMeta = records.some((r) => r.metadata !== null && Object.keys(r.metadata).length > 0);
    const body = {
      ids: records.map((r) => r.id),
      embeddings: records.map((r) => r.embedding!) as number[][] | string[],
      documents: withDocs ? records.map((r) => r.document as string) : undefined,
      metadatas: withMeta ? records.map((r) => (r.metadata && Object.keys(r.metadata).length ? r.metadata : null) as Metadata) : undefined,
    };
    if (!(await this.client.supportsBase64Encoding())) {
      await col.upsert(body as Parameters<Collection['upsert']>[0]);
      return;
    }
    // The records were validated before (lib/migrate/validate.ts): sent as they are, the embeddings as
    // packed float32 in base64 (the server's own encoding), one Buffer per record instead of the
    // client's byte-by-byte string building, through the client's fetch (token, busy backoff).
    body.embeddings = records.map((r) => embeddingBase64(r.embedding!));
    await this.post(col, 'upsert', body);
  }

  /** POST `op` of a collection of this endpoint's server (its tenant and database), through the client's fetch. */
  private async post(col: Collection, op: string, body: unknown): Promise<void> {
    const { tenant, database, id } = col as Collection & { tenant: string; database: string };
    const holder = this.client as unknown as { apiClient: { getConfig(): { fetch?: (r: Request) => Promise<Response>; headers?: unknown; baseUrl?: string } } };
    const config = holder.apiClient.getConfig();
    const headers = new Headers(config.headers as HeadersInit | undefined);
    headers.set('content-type', 'application/json');
    const url = `${config.baseUrl ?? this.url}/api/v2/tenants/${encodeURIComponent(tenant)}/databases/${encodeURIComponent(database)}/collections/${encodeURIComponent(id)}/${op}`;
    const request = new Request(url, { method: 'POST', headers, body: JSON.stringify(body) });
    const r = await (config.fetch ?? fetch)(request);
    if (!r.ok) throw new Error(`${op} ${col.name}: HTTP ${r.status} ${(await r.text().catch(() => '')).slice(0, 300)}`);
    await r.body?.cancel();
  }

  async count(collection: string): Promise<number> {
    return (await this.collection(collection)).count();
  }

  async get(collection: string, ids: string[]): Promise<MigrationRecord[]> {
    const col = await this.collection(collection);
    const r = await col.get({ ids, include: ['embeddings', 'documents', 'metadatas'] as never });
    return r.ids.map((id, i) => ({
      id, embedding: r.embeddings?.[i] ? Array.from(r.embeddings[i]!) : null, document: r.documents?.[i] ?? null,
      metadata: (r.metadatas?.[i] as RecordMetadata | null) ?? null,
    }));
  }

  async deleteCollection(collection: string): Promise<void> {
    await this.client.deleteCollection({ name: collection });
    this.collections.delete(collection);
  }

  /** Rename a collection in place (collection modify): its records and index stay; applications see the new name at once. */
  async renameCollection(from: string, to: string): Promise<void> {
    const col = await this.client.getCollection({ name: from, embeddingFunction: undefined } as never);
    await col.modify({ name: to });
    this.collections.delete(from);
    this.collections.delete(to);
  }

  async close(): Promise<void> {}

  private async collection(name: string): Promise<Collection> {
    const have = this.collections.get(name);
    if (have) return have;
    // getCollection never creates: a missing source collection is an error, not a new empty one.
    const col = await this.client.getCollection({ name, embeddingFunction: undefined } as never);
    this.collections.set(name, col);
    return col;
  }
}

/** An embedding as little-endian float32, base64 (what the chromadb client sends when the server supports it). */
export function embeddingBase64(embedding: number[]): string {
  return Buffer.from(Float32Array.from(embedding).buffer).toString('base64');
}

/** HNSW settings worth carrying over (not the space: that is `space`). */
function hnswSettings(c: Collection): Record<string, number> | undefined {
  const h = c.configuration?.hnsw as Record<string, unknown> | null | undefined;
  if (!h) return undefined;
  const out: Record<string, number> = {};
  for (const k of ['ef_construction', 'ef_search', 'max_neighbors', 'resize_factor', 'sync_threshold']) {
    if (typeof h[k] === 'number') out[k] = h[k] as number;
  }
  return Object.keys(out).length ? out : undefined;
}

function spaceOf(c: Collection): DistanceSpace {
  const fromConfig = c.configuration?.hnsw?.space ?? c.configuration?.spann?.space;
  const fromMeta = c.metadata?.['hnsw:space'];
  const s = (fromConfig ?? fromMeta ?? 'l2') as string;
  return s === 'cosine' || s === 'ip' ? s : 'l2';
}

/** Collection metadata without Chroma's own `hnsw:*` settings (those travel as the configuration). */
function userMetadata(m: Metadata | undefined | null): RecordMetadata | null {
  if (!m) return null;
  const out: RecordMetadata = {};
  for (const [k, v] of Object.entries(m)) if (!k.startsWith('hnsw:')) out[k] = v as RecordMetadata[string];
  return Object.keys(out).length ? out : null;
}
