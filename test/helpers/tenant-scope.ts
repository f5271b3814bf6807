/**
 * Tenants, databases and collections the tenant tests set up on a real Chroma server:
 * `makeScope` creates a tenant (unless it exists) and a database in it; `fill` creates a cosine
 * collection in a scope (the default database when none) holding `count` sample records (dim 8),
 * added 250 at a time.
 */
import { chromaAdminFor, chromaClientFor, type ChromaScope } from '../../lib/chroma/client.ts';
import { sampleRecords } from '../../testkit/sample-db.ts';

const DIM = 8;

export async function makeScope(url: string, s: ChromaScope): Promise<void> {
  const admin = chromaAdminFor(url);
  await admin.createTenant({ name: s.tenant }).catch(() => undefined); // may exist already
  await admin.createDatabase({ tenant: s.tenant, name: s.database });
}

export async function fill(url: string, scope: ChromaScope | undefined, name: string, count: number, seed: number): Promise<void> {
  const col = await chromaClientFor(url, null, scope).createCollection({ name, embeddingFunction: null, configuration: { hnsw: { space: 'cosine' } } });
  const recs = sampleRecords({ collection: name, start: 0, count, dim: DIM, seed });
  for (let i = 0; i < count; i += 250) {
    await col.add({
      ids: recs.ids.slice(i, i + 250), embeddings: recs.embeddings.slice(i, i + 250),
      documents: recs.documents.slice(i, i + 250), metadatas: recs.metadatas.slice(i, i + 250),
    });
  }
}
