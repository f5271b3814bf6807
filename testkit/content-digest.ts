import crypto from 'node:crypto';
import { ChromaClient } from 'chromadb';

/**
 * A digest of what a Chroma server serves: every collection's name, configuration space and
 * every record (id, document, metadata, embedding), paged in id order. Two servers with equal
 * digests serve the same data, whatever their files look like on disk.
 */
export async function servedContentDigest(url: string, pageSize = 500): Promise<string> {
  const u = new URL(url);
  const client = new ChromaClient({ host: u.hostname, port: Number(u.port || (u.protocol === 'https:' ? 443 : 80)), ssl: u.protocol === 'https:' });
  const h = crypto.createHash('sha256');
  const cols = (await client.listCollections()).sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const c of cols) {
    const col = await client.getCollection({ name: c.name, embeddingFunction: undefined as never });
    h.update(`collection\0${c.name}\0${JSON.stringify(col.configuration?.hnsw?.space ?? null)}\0`);
    const records: { id: string; line: string }[] = [];
    const n = await col.count();
    for (let offset = 0; offset < n; offset += pageSize) {
      const page = await col.get({ limit: pageSize, offset, include: ['documents', 'metadatas', 'embeddings'] as never });
      page.ids.forEach((id, i) => {
        records.push({ id, line: JSON.stringify([id, page.documents?.[i] ?? null, sortKeys(page.metadatas?.[i] ?? null), page.embeddings?.[i] ?? null]) });
      });
    }
    records.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const r of records) h.update(`${r.line}\n`);
  }
  return h.digest('hex');
}

function sortKeys(v: unknown): unknown {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return v;
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)));
}
