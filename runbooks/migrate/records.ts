/** The staging files of a migration: JSON-lines written atomically, read in batches, sampled, compared. */
import fs from 'node:fs/promises';
import { readJsonl } from '../../lib/migrate/jsonl-lines.ts';
import type { MigrationRecord } from '../../lib/migrate/types.ts';

export async function writeJsonl(file: string, pages: AsyncIterable<MigrationRecord[]>, onPage: (n: number) => void): Promise<number> {
  const tmp = `${file}.partial`;
  const fh = await fs.open(tmp, 'w');
  let n = 0;
  try {
    for await (const page of pages) {
      await fh.write(page.map((r) => JSON.stringify(r)).join('\n') + '\n');
      n += page.length;
      onPage(page.length);
    }
  } catch (e) {
    await fh.close();
    await fs.rm(tmp, { force: true });
    throw Object.assign(e as Error, { partialCount: n });
  }
  await fh.close();
  await fs.rename(tmp, file);
  return n;
}

export async function* readBatches(file: string, size: number): AsyncIterable<MigrationRecord[]> {
  let batch: MigrationRecord[] = [];
  for await (const r of readJsonl<MigrationRecord>(file)) {
    batch.push(r);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length) yield batch;
}

/** Every k-th staged record, about `n` of them (deterministic, one pass). */
export async function sampleStaged(file: string, total: number, n: number): Promise<MigrationRecord[]> {
  if (n <= 0 || total === 0) return [];
  const step = Math.max(1, Math.floor(total / n));
  const out: MigrationRecord[] = [];
  let i = 0;
  for await (const r of readJsonl<MigrationRecord>(file)) {
    if (i++ % step === 0 && out.length < n) out.push(r);
  }
  return out;
}

/** Same document, same metadata, embedding equal within 1e-6 (float32 storage). */
export function compareRecords(want: MigrationRecord, got: MigrationRecord | undefined): string | null {
  if (!got) return 'missing on the target';
  if ((want.document ?? null) !== (got.document ?? null)) return 'document differs';
  const wm = want.metadata ?? {};
  const gm = got.metadata ?? {};
  const keys = new Set([...Object.keys(wm), ...Object.keys(gm)]);
  for (const k of keys) {
    const a = wm[k];
    const b = gm[k];
    if (typeof a === 'number' && typeof b === 'number' ? Math.abs(a - b) > 1e-9 * Math.max(1, Math.abs(a)) : a !== b) {
      return `metadata ${k}: ${JSON.stringify(b)} on the target, ${JSON.stringify(a)} in the source`;
    }
  }
  const we = want.embedding ?? [];
  const ge = got.embedding ?? [];
  if (we.length !== ge.length) return `embedding dimension ${ge.length}, expected ${we.length}`;
  for (let i = 0; i < we.length; i++) {
    if (Math.abs(we[i]! - ge[i]!) > 1e-6 * Math.max(1, Math.abs(we[i]!))) return `embedding value ${i} differs (${ge[i]} vs ${we[i]})`;
  }
  return null;
}
