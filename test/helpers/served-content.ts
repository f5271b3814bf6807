import assert from 'node:assert/strict';
import { chromaClientFor, type ChromaScope } from '../../lib/chroma/client.ts';

interface Served {
  space: string;
  records: Map<string, { document: string | null; metadata: unknown; embedding: number[] }>;
}

/** Everything a server serves (in `scope`: a tenant and database), by collection and id. */
export async function dumpServed(url: string, scope?: ChromaScope): Promise<Map<string, Served>> {
  const client = chromaClientFor(url, null, scope);
  const out = new Map<string, Served>();
  for (const c of await client.listCollections()) {
    const col = await client.getCollection({ name: c.name, embeddingFunction: undefined } as never);
    const records: Served['records'] = new Map();
    const n = await col.count();
    for (let offset = 0; offset < n; offset += 500) {
      const page = await col.get({ limit: 500, offset, include: ['documents', 'metadatas', 'embeddings'] as never });
      page.ids.forEach((id, i) => records.set(id, { document: page.documents[i] ?? null, metadata: page.metadatas[i] ?? null, embedding: Array.from(page.embeddings[i]!) }));
    }
    out.set(c.name, { space: col.configuration?.hnsw?.space ?? 'l2', records });
  }
  return out;
}

/**
 * Two servers serve the same collections (same space), ids, documents and metadata, and
 * embeddings equal within 1e-6: Chroma's JSON prints float32 values with 8 significant digits,
 * so a value read back through the API can differ from the stored one by one float32 ulp.
 */
export async function assertSameContent(a: string, b: string, scopes: { a?: ChromaScope; b?: ChromaScope } = {}): Promise<void> {
  const [x, y] = [await dumpServed(a, scopes.a), await dumpServed(b, scopes.b)];
  assert.deepEqual([...x.keys()].sort(), [...y.keys()].sort(), 'collections');
  for (const [name, cx] of x) {
    const cy = y.get(name)!;
    assert.equal(cy.space, cx.space, `${name}: space`);
    assert.deepEqual([...cy.records.keys()].sort(), [...cx.records.keys()].sort(), `${name}: ids`);
    for (const [id, r] of cx.records) {
      const s = cy.records.get(id)!;
      assert.equal(s.document, r.document, `${name}/${id}: document`);
      assert.deepEqual(s.metadata, r.metadata, `${name}/${id}: metadata`);
      assert.equal(s.embedding.length, r.embedding.length);
      for (let i = 0; i < r.embedding.length; i++) {
        assert.ok(Math.abs(s.embedding[i]! - r.embedding[i]!) <= 1e-6, `${name}/${id}: embedding[${i}] ${s.embedding[i]} vs ${r.embedding[i]}`);
      }
    }
  }
}
