/**
 * One import batch into the target: written (retried on a transient failure), then recorded in the
 * checkpoint, the summary and the log. Which batches of a target are written: a contiguous prefix
 * plus the ones finished out of order (parallel writers).
 */
import pRetry from 'p-retry';
import type { MigrationRecord } from '../../lib/migrate/types.ts';
import type { MigrateCtx } from './context.ts';

type TargetEntry = MigrateCtx['cp']['targets'][string];

/** Upsert batch `i` of target `name` into collection `into`, then record it as written. */
export async function sendBatch(c: MigrateCtx, name: string, into: string, entry: TargetEntry, i: number, batch: MigrationRecord[]): Promise<void> {
  await pRetry(() => c.target!.upsert(into, batch, c.o.signal), {
    retries: 4, minTimeout: 250, factor: 2, signal: c.o.signal,
    onFailedAttempt: async (err) => {
      c.summary.import.retries++;
      await c.log.write({ event: 'retry', collection: name, batch: i, attempt: err.attemptNumber, error: err.message });
    },
  });
  markBatchDone(entry, i);
  entry.recordsDone += batch.length;
  c.summary.import.batchesSent++;
  c.summary.import.recordsSent += batch.length;
  await c.store.save(c.cp);
  await c.log.write({ event: 'batch', collection: name, batch: i + 1, records: batch.length });
}

/** Batch `i` of a target is written: extend the contiguous prefix, or remember it as done out of order. */
export function markBatchDone(t: { batchesDone: number; doneAbove?: number[] }, i: number): void {
  const above = new Set(t.doneAbove ?? []);
  above.add(i);
  while (above.has(t.batchesDone)) {
    above.delete(t.batchesDone);
    t.batchesDone++;
  }
  t.doneAbove = [...above].sort((a, b) => a - b);
}
