/** `--test-queries FILE`: a JSON array (or JSON lines) of { collection, embedding, k?, where? }, each aimed at the target most of that old collection's records went to. */
import fs from 'node:fs/promises';
import { UserError } from '../../lib/common/errors.ts';
import type { ExpectedTarget, QueryCase } from './context.ts';

export async function loadTestQueries(file: string, targets: ReadonlyMap<string, ExpectedTarget>, topK: number): Promise<QueryCase[]> {
  let raw: string;
  try {
    raw = await fs.readFile(file, 'utf8');
  } catch {
    throw new UserError(`--test-queries ${file}: no such file`);
  }
  let items: unknown[];
  try {
    items = raw.trim().startsWith('[') ? (JSON.parse(raw) as unknown[]) : raw.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  } catch {
    throw new UserError(`--test-queries ${file}: not JSON (a list of { "collection", "embedding", "k", "where" })`);
  }
  return items.map((it, i) => {
    const q = it as { collection?: string; embedding?: number[]; k?: number; where?: Record<string, unknown> };
    if (typeof q.collection !== 'string' || !Array.isArray(q.embedding)) {
      throw new UserError(`--test-queries ${file}: query ${i + 1} needs "collection" (an old collection) and "embedding" (a vector)`);
    }
    // The target most of that collection's records went to.
    let target = '';
    let best = -1;
    for (const [name, t] of targets) {
      const n = t.from.get(q.collection) ?? 0;
      if (n > best) { best = n; target = name; }
    }
    if (best <= 0) throw new UserError(`--test-queries ${file}: query ${i + 1}: no collection ${q.collection} in the old database`);
    return { label: `query ${i + 1} (${q.collection})`, source: q.collection, target, embedding: q.embedding, k: q.k ?? topK, where: q.where };
  });
}
