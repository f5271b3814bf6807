import fs from 'node:fs/promises';
import type { Metadata } from 'chromadb';
import { chromaClientFor } from '../lib/chroma/client.ts';
import { startChromaServer } from '../lib/chroma/server.ts';

/** Builds deterministic sample Chroma databases through a real server (demo and tests). */

export interface SampleCollectionSpec {
  name: string;
  count: number;
  dim: number;
  space?: 'l2' | 'cosine' | 'ip';
  idPrefix?: string;
}

/** The four collections of the demo seed. */
export const SEED_COLLECTIONS: readonly SampleCollectionSpec[] = [
  { name: 'sergio_personality', count: 240, dim: 384, space: 'cosine' },
  { name: 'sergio_rhetorical', count: 310, dim: 384, space: 'cosine' },
  { name: 'sergio_humor', count: 180, dim: 384, space: 'cosine' },
  { name: 'sergio_corpus', count: 450, dim: 384, space: 'cosine' },
];

const CATEGORIES = ['anecdote', 'argument', 'joke', 'quote', 'note'] as const;
const LANGS = ['en', 'es', 'it'] as const;
const WORDS = ['river', 'ferry', 'vector', 'harbor', 'lantern', 'cargo', 'tide', 'compass', 'signal', 'anchor', 'drift', 'beacon'];

/** mulberry32: small, fast, deterministic. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function hashString(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

export interface SampleRecords {
  ids: string[];
  embeddings: number[][];
  documents: string[];
  metadatas: Metadata[];
}

/** Records `start .. start+count-1` of a collection; the same inputs always give the same records. */
export function sampleRecords(o: { collection: string; start: number; count: number; dim: number; seed?: number; idPrefix?: string }): SampleRecords {
  const out: SampleRecords = { ids: [], embeddings: [], documents: [], metadatas: [] };
  const prefix = o.idPrefix ?? `${o.collection}-`;
  for (let i = o.start; i < o.start + o.count; i++) {
    // One generator per record, so record i does not depend on the batch it was made in.
    const rnd = prng((hashString(o.collection) ^ Math.imul(o.seed ?? 42, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0);
    const emb = Array.from({ length: o.dim }, () => Math.fround(rnd() * 2 - 1));
    const words = Array.from({ length: 6 + Math.floor(rnd() * 6) }, () => WORDS[Math.floor(rnd() * WORDS.length)]!);
    out.ids.push(`${prefix}${String(i).padStart(6, '0')}`);
    out.embeddings.push(emb);
    out.documents.push(`${o.collection} #${i}: ${words.join(' ')}.`);
    out.metadatas.push({
      category: CATEGORIES[i % CATEGORIES.length]!,
      score: Math.round(rnd() * 10000) / 100,
      index: i,
      lang: LANGS[Math.floor(rnd() * LANGS.length)]!,
    });
  }
  return out;
}

const clientFor = chromaClientFor;

/**
 * Add sample records `start .. start+count-1` to an existing collection of the live server at `url`
 * (for tests that change a served database). Batches never exceed the server's max batch size.
 */
export async function addRecords(
  url: string,
  collectionName: string,
  o: { start: number; count: number; dim: number; seed?: number; idPrefix?: string },
): Promise<void> {
  const client = clientFor(url);
  const collection = await client.getCollection({ name: collectionName, embeddingFunction: undefined });
  const batch = Math.max(1, Math.min(await client.getMaxBatchSize(), 1000));
  for (let s = o.start; s < o.start + o.count; s += batch) {
    const n = Math.min(batch, o.start + o.count - s);
    await collection.add(sampleRecords({ collection: collectionName, start: s, count: n, dim: o.dim, seed: o.seed, idPrefix: o.idPrefix }));
  }
}

/** Create `dir` as a Chroma data directory holding `collections`; returns `{ name: count }`. */
export async function buildSampleDb(
  dir: string,
  collections: readonly SampleCollectionSpec[],
  opts: { seed?: number } = {},
): Promise<Record<string, number>> {
  await fs.mkdir(dir, { recursive: true });
  const server = await startChromaServer({ path: dir });
  try {
    const client = clientFor(server.url);
    const result: Record<string, number> = {};
    for (const spec of collections) {
      await client.createCollection({
        name: spec.name,
        embeddingFunction: null,
        configuration: { hnsw: { space: spec.space ?? 'l2' } },
      });
      await addRecords(server.url, spec.name, { start: 0, count: spec.count, dim: spec.dim, seed: opts.seed, idPrefix: spec.idPrefix });
      result[spec.name] = spec.count;
    }
    return result;
  } finally {
    await server.stop();
  }
}
