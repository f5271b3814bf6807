/**
 * A small in-process Qdrant stand-in for tests (no Qdrant server can be installed here).
 *
 * Every request is matched against test/fixtures/qdrant-api/schema.json, the part of Qdrant's
 * published REST contract (release line v1.19) that chroma-ferry sends: an unknown path or method,
 * an unknown query parameter, a query value or a body that does not validate is answered 400/404
 * and recorded in `violations` (tests assert it stays empty). It behaves as Qdrant does for what
 * chroma-ferry uses (test/fixtures/qdrant-api/README.md): collections with one unnamed vector,
 * ids as uint64 or UUID, cosine vectors normalised on upsert, exact counts, scroll ordered by id
 * with `next_page_offset`, retrieve, and collection aliases.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';

/** The compact contract, inside the repository. */
export const QDRANT_SCHEMA_FILE = fileURLToPath(new URL('../fixtures/qdrant-api/schema.json', import.meta.url));
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

type Distance = 'Cosine' | 'Euclid' | 'Dot' | 'Manhattan';
type PointId = number | string;
interface Point { id: PointId; vector: number[]; payload: Record<string, unknown> }
interface Collection {
  size: number; distance: Distance; points: Map<string, Point>;
  /** Cluster settings it was created with (Qdrant's defaults: 1 and 1). */
  shardNumber?: number; replicationFactor?: number;
  /** The `ordering` of each upsert received (absent: undefined). */
  orderings?: (string | undefined)[];
}

interface Operation {
  method: string;
  re: RegExp;
  params: string[];
  queryNames: Set<string>;
  query?: ValidateFunction;
  body?: ValidateFunction;
  operationId: string;
}

interface SchemaFile {
  release: string;
  operations: { operationId: string; method: string; path: string; query?: Record<string, object>; body?: object }[];
  definitions: Record<string, object>;
}

export interface QdrantStandin {
  url: string;
  /** Requests the real server would reject, or that the compact contract does not know. */
  violations: string[];
  /** Operation ids served, in order (e.g. to count upserts). */
  calls: string[];
  collections: Map<string, Collection>;
  /** Alias name -> collection name. */
  aliases: Map<string, string>;
  /** A collection by its name or one of its aliases (as Qdrant resolves them). */
  collection(name: string): Collection | undefined;
  close(): Promise<void>;
}

let compiled: { release: string; operations: Operation[] } | undefined;

/** The operations of the compact contract, with their query and body validators. */
export function qdrantContract(): { release: string; operations: Operation[] } {
  if (compiled) return compiled;
  const doc = JSON.parse(fs.readFileSync(QDRANT_SCHEMA_FILE, 'utf8')) as SchemaFile;
  const uint = (max: number) => ({ type: 'number' as const, validate: (n: number) => Number.isInteger(n) && n >= 0 && n <= max });
  // Bodies are JSON (no coercion); query values are strings, read as the types they declare.
  const [bodies, queries] = [false, true].map((coerceTypes) => {
    const ajv = new Ajv({ strict: true, allowUnionTypes: true, coerceTypes });
    ajv.addFormat('uuid', UUID_RE);
    ajv.addFormat('uint', uint(Number.MAX_SAFE_INTEGER));
    ajv.addFormat('uint32', uint(2 ** 32 - 1));
    ajv.addFormat('uint64', uint(2 ** 64 - 1));
    ajv.addFormat('float', { type: 'number', validate: (n: number) => Math.abs(n) <= 3.4028234663852886e38 });
    ajv.addSchema({ $id: 'qdrant', definitions: doc.definitions });
    return ajv;
  });
  const ref = (schema: object): object => JSON.parse(JSON.stringify(schema).replaceAll('"#/definitions/', '"qdrant#/definitions/'));
  const operations = doc.operations.map((op): Operation => {
    const params: string[] = [];
    const re = new RegExp(`^${op.path.replace(/\{([^}]+)\}/g, (_, name: string) => { params.push(name); return '([^/]+)'; })}$`);
    const query = op.query ? { type: 'object', properties: ref(op.query), additionalProperties: false } : undefined;
    return {
      method: op.method, re, params, operationId: op.operationId,
      queryNames: new Set(Object.keys(op.query ?? {})),
      query: query ? queries!.compile(query) : undefined,
      body: op.body ? bodies!.compile(ref(op.body)) : undefined,
    };
  });
  compiled = { release: doc.release, operations };
  return compiled;
}

export async function startQdrantStandin(o: { apiKey?: string } = {}): Promise<QdrantStandin> {
  const { release, operations } = qdrantContract();
  const violations: string[] = [];
  const calls: string[] = [];
  const collections = new Map<string, Collection>();
  const aliases = new Map<string, string>();

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const t0 = performance.now();
      const send = (status: number, result: unknown, error?: string) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(error ? { status: { error }, time: 0 } : { result, status: 'ok', time: (performance.now() - t0) / 1000 }));
      };
      const reject = (status: number, why: string) => {
        violations.push(`${req.method} ${req.url}: ${why}`);
        send(status, null, why);
      };
      const url = new URL(req.url ?? '/', 'http://x');
      // Literal paths come first in the contract: POST /collections/aliases is not a collection named "aliases".
      const op = operations.find((x) => x.method === req.method && x.re.test(url.pathname));
      if (!op) return reject(404, `no such operation in the compact Qdrant ${release} contract (test/fixtures/qdrant-api/schema.json)`);
      if (o.apiKey && req.headers['api-key'] !== o.apiKey) return send(401, null, 'Must provide an API key or an Authorization bearer token');
      for (const k of url.searchParams.keys()) if (!op.queryNames.has(k)) return reject(400, `unknown query parameter ${k}`);
      const query: Record<string, unknown> = Object.fromEntries(url.searchParams);
      if (op.query && !op.query(query)) return reject(400, `query does not match the schema: ${JSON.stringify(op.query.errors?.slice(0, 3))}`);
      let body: unknown;
      if (chunks.length) {
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          return reject(400, 'body is not JSON');
        }
      }
      if (op.body) {
        if (body === undefined) return reject(400, 'request body required');
        if (!op.body(body)) return reject(400, `body does not match the schema: ${JSON.stringify(op.body.errors?.slice(0, 3))}`);
      } else if (body !== undefined) {
        return reject(400, `${op.operationId} takes no body`);
      }
      const m = op.re.exec(url.pathname)!;
      const name = op.params.length ? decodeURIComponent(m[1]!) : '';
      calls.push(op.operationId);
      try {
        if (op.operationId === 'upsert_points') resolve(name)?.orderings?.push(query.ordering as string | undefined);
        const out = handle(op.operationId, name, body as Record<string, unknown>, query.wait === true);
        if ('error' in out) send(out.status, null, out.error);
        else send(200, out.result);
      } catch (e) {
        reject(500, `stand-in does not implement ${op.operationId}: ${(e as Error).message}`);
      }
    });
  });

  type Outcome = { result: unknown } | { status: number; error: string };
  const notFound = (name: string): Outcome => ({ status: 404, error: `Not found: Collection \`${name}\` doesn't exist!` });
  /** A collection by its name or one of its aliases, as Qdrant resolves names in point and info requests. */
  const resolve = (name: string): Collection | undefined => collections.get(name) ?? collections.get(aliases.get(name) ?? '');
  const aliasList = (only?: string) => [...aliases].filter(([, c]) => only === undefined || c === only).sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([alias_name, collection_name]) => ({ alias_name, collection_name }));

  function handle(opId: string, name: string, body: Record<string, unknown>, wait: boolean): Outcome {
    const col = resolve(name);
    switch (opId) {
      case 'root': return { result: { title: 'qdrant - vector search engine', version: '1.19.0' } };
      case 'get_collections': return { result: { collections: [...collections.keys()].map((n) => ({ name: n })) } };
      case 'get_collection':
        if (!col) return notFound(name);
        return {
          result: {
            status: 'green', optimizer_status: 'ok', indexed_vectors_count: col.points.size, points_count: col.points.size, segments_count: 1,
            config: {
              params: { vectors: { size: col.size, distance: col.distance }, shard_number: col.shardNumber ?? 1, replication_factor: col.replicationFactor ?? 1, write_consistency_factor: 1, on_disk_payload: true },
              hnsw_config: { m: 16, ef_construct: 100, full_scan_threshold: 10000, max_indexing_threads: 0, on_disk: false },
              optimizer_config: { deleted_threshold: 0.2, vacuum_min_vector_number: 1000, default_segment_number: 0, max_segment_size: null, memmap_threshold: null, indexing_threshold: 20000, flush_interval_sec: 5, max_optimization_threads: null },
              wal_config: { wal_capacity_mb: 32, wal_segments_ahead: 0 },
            },
            payload_schema: {},
          },
        };
      case 'create_collection': {
        if (collections.has(name)) return { status: 409, error: `Wrong input: Collection \`${name}\` already exists!` };
        if (aliases.has(name)) return { status: 400, error: `Wrong input: Alias with name \`${name}\` already exists` };
        const v = body.vectors as { size?: number; distance?: Distance } | undefined;
        if (typeof v?.size !== 'number' || !v.distance) return { status: 400, error: 'stand-in supports one unnamed vector per collection' };
        collections.set(name, {
          size: v.size, distance: v.distance, points: new Map(), orderings: [],
          shardNumber: (body.shard_number as number | undefined) ?? 1, replicationFactor: (body.replication_factor as number | undefined) ?? 1,
        });
        return { result: true };
      }
      case 'delete_collection': {
        // Qdrant drops the aliases of a deleted collection with it.
        for (const [alias, target] of aliases) if (target === name) aliases.delete(alias);
        return { result: collections.delete(name) };
      }
      case 'update_aliases': return changeAliases(body.actions as AliasAction[]);
      case 'get_collection_aliases':
        if (!collections.has(name)) return notFound(name);
        return { result: { aliases: aliasList(name) } };
      case 'get_collections_aliases': return { result: { aliases: aliasList() } };
      case 'upsert_points': {
        if (!col) return notFound(name);
        const points = body.points as { id: PointId; vector: number[]; payload?: Record<string, unknown> | null }[];
        for (const p of points) {
          if (p.vector.length !== col.size) return { status: 400, error: `Wrong input: Vector dimension error: expected dim: ${col.size}, got ${p.vector.length}` };
        }
        for (const p of points) {
          const vector = col.distance === 'Cosine' ? normalise(p.vector) : p.vector.map(Math.fround);
          col.points.set(keyOf(p.id), { id: canonical(p.id), vector, payload: p.payload ?? {} });
        }
        return { result: { operation_id: calls.length, status: wait ? 'completed' : 'acknowledged' } };
      }
      case 'count_points':
        if (!col) return notFound(name);
        return { result: { count: col.points.size } };
      case 'scroll_points': {
        if (!col) return notFound(name);
        const limit = (body.limit as number | null | undefined) ?? 10;
        const sorted = [...col.points.values()].sort(compareIds);
        const from = body.offset === undefined || body.offset === null ? 0 : sorted.findIndex((p) => compareIds(p, { id: body.offset as PointId }) >= 0);
        const start = from < 0 ? sorted.length : from;
        const page = sorted.slice(start, start + limit);
        const next = sorted[start + limit];
        return { result: { points: page.map((p) => view(p, body)), next_page_offset: next ? next.id : null } };
      }
      case 'get_points': {
        if (!col) return notFound(name);
        const ids = body.ids as PointId[];
        return { result: ids.map((id) => col.points.get(keyOf(id))).filter((p): p is Point => Boolean(p)).map((p) => view(p, body)) };
      }
      default:
        throw new Error('no handler for an operation of the contract');
    }
  }

  /** The actions in order, all or none. */
  function changeAliases(actions: AliasAction[]): Outcome {
    const next = new Map(aliases);
    for (const a of actions) {
      if ('create_alias' in a) {
        const { alias_name: alias, collection_name: target } = a.create_alias;
        if (!collections.has(target)) return notFound(target);
        if (collections.has(alias)) return { status: 409, error: `Wrong input: Collection \`${alias}\` already exists!` };
        if (next.has(alias)) throw new Error(`creating alias ${alias}, which exists (what Qdrant does then is not modelled)`);
        next.set(alias, target);
      } else if ('delete_alias' in a) {
        next.delete(a.delete_alias.alias_name); // "Delete alias if exists"
      } else {
        const { old_alias_name: from, new_alias_name: to } = a.rename_alias;
        const target = next.get(from);
        if (target === undefined) return { status: 404, error: `Not found: Alias \`${from}\` doesn't exist!` };
        if (collections.has(to)) return { status: 409, error: `Wrong input: Collection \`${to}\` already exists!` };
        next.delete(from);
        next.set(to, target);
      }
    }
    aliases.clear();
    for (const [k, v] of next) aliases.set(k, v);
    return { result: true };
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`, violations, calls, collections, aliases, collection: resolve,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

type AliasAction =
  | { create_alias: { alias_name: string; collection_name: string } }
  | { delete_alias: { alias_name: string } }
  | { rename_alias: { old_alias_name: string; new_alias_name: string } };

function keyOf(id: PointId): string {
  return typeof id === 'number' ? `n:${id}` : `u:${id.toLowerCase()}`;
}

function canonical(id: PointId): PointId {
  return typeof id === 'string' ? id.toLowerCase() : id;
}

/** Qdrant orders numeric ids before UUIDs, numbers by value, UUIDs by their 128-bit value. */
function compareIds(a: Pick<Point, 'id'>, b: Pick<Point, 'id'>): number {
  if (typeof a.id === 'number' && typeof b.id === 'number') return a.id - b.id;
  if (typeof a.id === 'number') return -1;
  if (typeof b.id === 'number') return 1;
  const x = a.id.replace(/-/g, '').toLowerCase();
  const y = b.id.replace(/-/g, '').toLowerCase();
  return x < y ? -1 : x > y ? 1 : 0;
}

function view(p: Point, body: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { id: p.id };
  if (body.with_payload !== false) out.payload = p.payload; // Qdrant's default for scroll and retrieve: with payload
  if (body.with_vector === true) out.vector = p.vector;
  return out;
}

function normalise(v: number[]): number[] {
  const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0)) || 1;
  return v.map((x) => Math.fround(x / n));
}
