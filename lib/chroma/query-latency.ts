/**
 * Query latency by vector (seed 001: "Query latency < 300ms"): per collection, a spread sample of
 * stored records is read with their embeddings, then the server is queried by each of those
 * vectors, one query at a time, and each round trip is timed (request sent -> answer read). The
 * sampling reads are not timed. Plain HTTP (`fetch`), v2 API or the v1 one of Chroma 0.x.
 */
import { collectionUrl, fail, postJson, type ApiVersion, type ServedCollection } from './http.ts';
import { collectionKey } from '../serving/verify-serving.ts';

export interface LatencyStats {
  /** Timed queries. */
  samples: number;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
}

export interface CollectionLatency {
  /** tenant/database/name */
  name: string;
  count: number;
  /** null: nothing timed (empty collection, or no stored embeddings); `skipped` says why. */
  stats: LatencyStats | null;
  skipped?: string;
}

export interface LatencyReport {
  collections: CollectionLatency[];
  /** Over every timed query of every collection; null when none was timed. */
  overall: LatencyStats | null;
}

/** Nearest-rank percentile (p in 0..100) of unsorted values: a value that was measured, never an interpolation. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new Error('percentile of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export function latencyStats(ms: readonly number[]): LatencyStats | null {
  if (ms.length === 0) return null;
  return { samples: ms.length, p50Ms: percentile(ms, 50), p95Ms: percentile(ms, 95), maxMs: Math.max(...ms) };
}

/**
 * `samples` offsets spread over 0..count-1: the range is cut into equal strata and one offset is
 * drawn in each, so the sample covers the whole collection (old and new records) and differs
 * between runs. Distinct and ascending; all offsets when samples >= count.
 */
export function sampleOffsets(count: number, samples: number, random: () => number = Math.random): number[] {
  const k = Math.min(count, samples);
  const out: number[] = [];
  for (let i = 0; i < k; i++) {
    const lo = Math.floor((i * count) / k);
    const hi = Math.floor(((i + 1) * count) / k); // exclusive; hi > lo because k <= count
    out.push(lo + Math.floor(random() * (hi - lo)));
  }
  return out;
}

export interface LatencyOptions {
  /** Records sampled (and queries timed) per collection. */
  samples: number;
  /** n_results of each query (capped at the collection's count). */
  nResults: number;
  signal?: AbortSignal;
}

export async function measureQueryLatency(url: string, api: ApiVersion, collections: ServedCollection[], o: LatencyOptions): Promise<LatencyReport> {
  const out: CollectionLatency[] = [];
  const all: number[] = [];
  for (const c of collections) {
    const name = collectionKey(c);
    if (c.count === 0) {
      out.push({ name, count: 0, stats: null, skipped: 'empty collection' });
      continue;
    }
    const vectors = await sampleVectors(url, api, c, sampleOffsets(c.count, o.samples), o.signal);
    if (vectors.length === 0) {
      out.push({ name, count: c.count, stats: null, skipped: 'the sampled records have no stored embeddings' });
      continue;
    }
    const ms: number[] = [];
    for (const v of vectors) ms.push(await timeQuery(url, api, c, v, Math.min(o.nResults, c.count), o.signal));
    all.push(...ms);
    out.push({ name, count: c.count, stats: latencyStats(ms) });
  }
  return { collections: out, overall: latencyStats(all) };
}

/** The stored embeddings of the records at `offsets` (one read each; records without one are left out). */
async function sampleVectors(url: string, api: ApiVersion, c: ServedCollection, offsets: number[], signal?: AbortSignal): Promise<number[][]> {
  const vectors: number[][] = [];
  for (const offset of offsets) {
    const r = await postJson(collectionUrl(url, api, c, c.id, 'get'), { limit: 1, offset, include: ['embeddings'] }, { signal });
    const emb = r.status === 200 ? (r.body as { embeddings?: unknown[] | null }).embeddings?.[0] : undefined;
    if (r.status !== 200) fail(`reading a sample record of ${c.name} at ${url}`, r.status, r.body);
    if (Array.isArray(emb) && emb.length > 0) vectors.push(emb as number[]);
  }
  return vectors;
}

/** One query by vector, timed from the request to the whole answer read (ms). */
async function timeQuery(url: string, api: ApiVersion, c: ServedCollection, vector: number[], nResults: number, signal?: AbortSignal): Promise<number> {
  const t0 = performance.now();
  const r = await postJson(collectionUrl(url, api, c, c.id, 'query'), { query_embeddings: [vector], n_results: nResults, include: ['distances'] }, { signal });
  const ms = performance.now() - t0;
  if (r.status !== 200) fail(`querying ${c.name} by vector at ${url}`, r.status, r.body);
  return ms;
}
