/**
 * The gate's hash join: the expected records and the new database's, both spilled in buckets by
 * id (record-buckets.ts), met one bucket at a time. Each expected record (the last staged of an id
 * in a collection, as the migration's upserts leave it) and each new record is offered to the
 * checks once; a pair with the same id in the same collection is compared; the rest are missing
 * or extra. Memory: one bucket of each side.
 */
import type { GateChecker } from './checks.ts';
import type { DocumentCopies } from './document-copies.ts';
import type { BucketRecord, RecordBuckets } from './record-buckets.ts';

export async function joinRecords(expected: RecordBuckets, actual: RecordBuckets, gate: GateChecker, documents: DocumentCopies, signal?: AbortSignal): Promise<void> {
  if (expected.buckets !== actual.buckets) throw new Error('gate: both sides must be bucketed alike');
  for (let b = 0; b < expected.buckets; b++) {
    signal?.throwIfAborted();
    const want = new Map<string, BucketRecord>();
    for (const r of await expected.read(b)) want.set(`${r.tag}\u0000${r.id}`, r);
    for (const r of want.values()) {
      gate.expectedRecord(r.tag, r);
      await documents.add(0, r.tag, r.document, r.id);
    }
    const owner = new Map<string, number>();
    for (const got of await actual.read(b)) {
      const other = owner.get(got.id);
      if (other === undefined) owner.set(got.id, got.tag);
      gate.actualRecord(got.tag, got, other !== undefined && other !== got.tag ? other : undefined);
      await documents.add(1, got.tag, got.document, got.id);
      const key = `${got.tag}\u0000${got.id}`;
      const w = want.get(key);
      if (w) {
        want.delete(key);
        gate.matched(got.tag, w, got);
      } else {
        gate.extra(got.tag, got);
      }
    }
    for (const w of want.values()) gate.missing(w.tag, w);
  }
  for await (const c of documents.copies()) gate.documentCopies(c.tag, c.expected, c.actual, c.ids);
}
