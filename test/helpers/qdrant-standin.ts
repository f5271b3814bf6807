/**
 * A small in-process Qdrant stand-in for tests (no Qdrant server can be installed here).
 *
 * Every request is matched against Qdrant's published OpenAPI document (v1.19,
 * ../shared/contracts/qdrant/openapi.json): an unknown path or method, an unknown query
 * parameter, or a body that does not validate against the operation's schema is answered 400/404
 * and recorded in `violations` (tests assert it stays empty). It behaves as Qdrant does for what
 * chroma-ferry uses (NOTES.md beside the document): collections with one unnamed vector, ids as
 * uint64 or UUID, cosine vectors normalised on upsert, exact counts, scroll ordered by id with
 * `next_page_offset`, retrieve, exact search for Cosine, Euclid and Dot.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';

const OPENAPI_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../shared/contracts/qdrant/openapi.json');
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

type Distance = 'Cosine' | 'Euclid' | 'Dot';
type PointId = number | string;
interface Point { id: PointId; vector: number[]; payload: Record<string, unknown> }
interface Collection { size: number; distance: Distance; points: Map<string, Point> }

interface Operation {
  method: string;
  re: RegExp;
  params: string[];
  query: Set<string>;
  body?: ValidateFunction;
  operationId: string;
}

export interface QdrantStandin {
  url: string;
  /** Requests the real server would reject, or that the contract does not know. */
  violations: string[];
  /** Operation ids served, in order (e.g. to count upserts). */
  calls: string[];
  collections: Map<string, Collection>;
  close(): Promise<void>;
}

let compiled: { operations: Operation[] } | undefined;

function contract(): { operations: Operation[] } {
  if (compiled) return compiled;
  const doc = openApiNullable(JSON.parse(fs.readFileSync(OPENAPI_FILE, 'utf8'))) as {
    paths: Record<string, Record<string, { operationId: string; parameters?: { name: string; in: string }[]; requestBody?: { content: Record<string, { schema: unknown }> } }>>;
  };
  const ajv = new Ajv({ strict: false, allErrors: false });
  const formats = new Set<string>();
  JSON.stringify(doc, (k, v) => { if (k === 'format' && typeof v === 'string') formats.add(v); return v; });
  for (const f of formats) ajv.addFormat(f, f === 'uuid' ? UUID_RE : true);
  ajv.addSchema({ ...doc, $id: 'openapi.json' });
  const operations: Operation[] = [];
  for (const [template, methods] of Object.entries(doc.paths)) {
    const params: string[] = [];
    const re = new RegExp(`^${template.replace(/\{([^}]+)\}/g, (_, name: string) => { params.push(name); return '([^/]+)'; })}$`);
    for (const [method, op] of Object.entries(methods)) {
      const schema = op.requestBody?.content?.['application/json']?.schema as { $ref?: string } | undefined;
      const ref = schema?.$ref ? { $ref: `openapi.json${schema.$ref}` } : schema;
      operations.push({
        method: method.toUpperCase(), re, params, operationId: op.operationId,
        query: new Set((op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name)),
        body: ref ? ajv.compile(ref as object) : undefined,
      });
    }
  }
  compiled = { operations };
  return compiled;
}

export async function startQdrantStandin(o: { apiKey?: string } = {}): Promise<QdrantStandin> {
  const { operations } = contract();
  const violations: string[] = [];
  const calls: string[] = [];
  const collections = new Map<string, Collection>();

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
      const op = operations.find((x) => x.method === req.method && x.re.test(url.pathname));
      if (!op) return reject(404, 'no such operation in the Qdrant v1.19 OpenAPI document');
      if (o.apiKey && req.headers['api-key'] !== o.apiKey) return send(401, null, 'Must provide an API key or an Authorization bearer token');
      for (const k of url.searchParams.keys()) if (!op.query.has(k)) return reject(400, `unknown query parameter ${k}`);
      const wait = url.searchParams.get('wait');
      if (wait !== null && wait !== 'true' && wait !== 'false') return reject(400, `wait=${wait} is not a boolean`);
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
      }
      const m = op.re.exec(url.pathname)!;
      const name = op.params.length ? decodeURIComponent(m[1]!) : '';
      calls.push(op.operationId);
      try {
        const out = handle(op.operationId, name, body as Record<string, unknown>, wait === 'true');
        if ('error' in out) send(out.status, null, out.error);
        else send(200, out.result);
      } catch (e) {
        reject(500, `stand-in does not implement ${op.operationId}: ${(e as Error).message}`);
      }
    });
  });

  function handle(opId: string, name: string, body: Record<string, unknown>, wait: boolean): { result: unknown } | { status: number; error: string } {
    const col = collections.get(name);
    const missing = { status: 404, error: `Not found: Collection \`${name}\` doesn't exist!` };
    switch (opId) {
      case 'root': return { result: { title: 'qdrant - vector search engine', version: '1.19.0' } };
      case 'get_collections': return { result: { collections: [...collections.keys()].map((n) => ({ name: n })) } };
      case 'collection_exists': return { result: { exists: Boolean(col) } };
      case 'get_collection':
        if (!col) return missing;
        return {
          result: {
            status: 'green', optimizer_status: 'ok', indexed_vectors_count: col.points.size, points_count: col.points.size, segments_count: 1,
            config: {
              params: { vectors: { size: col.size, distance: col.distance }, shard_number: 1, replication_factor: 1, write_consistency_factor: 1, on_disk_payload: true },
              hnsw_config: { m: 16, ef_construct: 100, full_scan_threshold: 10000, max_indexing_threads: 0, on_disk: false },
              optimizer_config: { deleted_threshold: 0.2, vacuum_min_vector_number: 1000, default_segment_number: 0, max_segment_size: null, memmap_threshold: null, indexing_threshold: 20000, flush_interval_sec: 5, max_optimization_threads: null },
              wal_config: { wal_capacity_mb: 32, wal_segments_ahead: 0 },
            },
            payload_schema: {},
          },
        };
      case 'create_collection': {
        if (col) return { status: 409, error: `Wrong input: Collection \`${name}\` already exists!` };
        const v = body.vectors as { size?: number; distance?: Distance };
        if (typeof v?.size !== 'number' || !v.distance) return { status: 400, error: 'stand-in supports one unnamed vector per collection' };
        collections.set(name, { size: v.size, distance: v.distance, points: new Map() });
        return { result: true };
      }
      case 'delete_collection':
        return { result: collections.delete(name) };
      case 'upsert_points': {
        if (!col) return missing;
        const points = body.points as { id: PointId; vector: number[]; payload?: Record<string, unknown> }[] | undefined;
        if (!points) return { status: 400, error: 'stand-in supports the points form of upsert' };
        for (const p of points) {
          if (typeof p.id === 'string' && !UUID_RE.test(p.id)) return { status: 400, error: `Unable to parse UUID: ${p.id}` };
          if (!Array.isArray(p.vector) || p.vector.length !== col.size) {
            return { status: 400, error: `Wrong input: Vector dimension error: expected dim: ${col.size}, got ${Array.isArray(p.vector) ? p.vector.length : 'named'}` };
          }
        }
        for (const p of points) {
          const vector = col.distance === 'Cosine' ? normalise(p.vector) : p.vector.map(Math.fround);
          col.points.set(keyOf(p.id), { id: canonical(p.id), vector, payload: p.payload ?? {} });
        }
        return { result: { operation_id: calls.length, status: wait ? 'completed' : 'acknowledged' } };
      }
      case 'count_points':
        if (!col) return missing;
        return { result: { count: col.points.size } };
      case 'scroll_points': {
        if (!col) return missing;
        const limit = (body.limit as number | undefined) ?? 10;
        const sorted = [...col.points.values()].sort(compareIds);
        const from = body.offset === undefined || body.offset === null ? 0 : sorted.findIndex((p) => compareIds(p, { id: body.offset as PointId } as Point) >= 0);
        const start = from < 0 ? sorted.length : from;
        const page = sorted.slice(start, start + limit);
        const next = sorted[start + limit];
        return { result: { points: page.map((p) => view(p, body)), next_page_offset: next ? next.id : null } };
      }
      case 'get_points': {
        if (!col) return missing;
        const ids = body.ids as PointId[];
        return { result: ids.map((id) => col.points.get(keyOf(id))).filter((p): p is Point => Boolean(p)).map((p) => view(p, body)) };
      }
      case 'query_points': {
        if (!col) return missing;
        const q = body.query as number[];
        if (!Array.isArray(q) || q.length !== col.size) return { status: 400, error: 'stand-in supports a plain query vector of the collection size' };
        const qv = col.distance === 'Cosine' ? normalise(q) : q;
        const scored = [...col.points.values()].map((p) => ({ p, score: score(col.distance, qv, p.vector) }));
        scored.sort((a, b) => (col.distance === 'Euclid' ? a.score - b.score : b.score - a.score));
        const limit = (body.limit as number | undefined) ?? 10;
        return { result: { points: scored.slice(0, limit).map((x) => ({ ...view(x.p, body), score: x.score, version: 0 })) } };
      }
      default:
        throw new Error('not used by chroma-ferry');
    }
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`, violations, calls, collections,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/**
 * OpenAPI 3.0's `nullable: true` without a `type` ("or null", as in `anyOf: [X, { nullable: true }]`)
 * in JSON Schema terms, which Ajv needs: `{ type: 'null' }`, or `anyOf: [schema, { type: 'null' }]`.
 */
function openApiNullable(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(openApiNullable);
  if (!node || typeof node !== 'object') return node;
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) o[k] = k === 'example' || k === 'examples' ? v : openApiNullable(v);
  if (o.nullable === true && o.type === undefined) {
    delete o.nullable;
    const keys = Object.keys(o).filter((k) => k !== 'description');
    return keys.length ? { anyOf: [o, { type: 'null' }] } : { type: 'null' };
  }
  return o;
}

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

function score(d: Distance, q: number[], v: number[]): number {
  if (d === 'Euclid') return Math.sqrt(q.reduce((s, x, i) => s + (x - v[i]!) ** 2, 0));
  return q.reduce((s, x, i) => s + x * v[i]!, 0);
}
