/** 5. import: batched upserts (<= the target's max batch size), retried, the checkpoint saved after each batch. */
import path from 'node:path';
import { CHECKPOINT_FILE } from '../../../lib/migrate/checkpoint.ts';
import { canStage } from '../../../lib/migrate/staging.ts';
import type { Step } from '../../../lib/engine/step.ts';
import { done as finished, skipped } from '../../../lib/engine/runner.ts';
import { etaOf, memoryCap, rateMeter, restoredNote, sourceOf, stagedFile, streams, writeName, type MigrateCtx, type MigratePlanCtx } from '../context.ts';
import { readBatches } from '../records.ts';
import { sendBatch } from '../batch-progress.ts';
import { streamIntoStaging } from '../stream.ts';

export const importStep: Step<MigrateCtx, MigratePlanCtx> = {
  name: 'import',
  title: 'import: batched upserts into staging collections, checkpoint after each batch',
  undoText: 'a failed gate drops the staging collections (the live ones are untouched until cutover)',

  async run(c, progress) {
    const { o, cp } = c;
    const targets = Object.entries(cp.targets);
    const totalRecords = targets.reduce((n, [, t]) => n + t.expected, 0);
    if (!cp.batchSize) cp.batchSize = chooseBatchSize(c);
    c.summary.batchSize = cp.batchSize;
    const batches = targets.reduce((n, [, t]) => n + Math.ceil(t.expected / cp.batchSize), 0);
    if (o.dryRun) return skipped(`--dry-run; would import ${totalRecords} records into ${targets.length} collections in ${batches} batches of up to ${cp.batchSize}`);
    if (cp.phases.import) return restoredNote(c, 'import');
    if (streams(c)) return finished(await streamIntoStaging(c, progress));
    await c.prepareWrite!(targets.map(([n]) => n));
    // Staged (a target that renames): every record goes into NAME__ferry_<run>; live collections untouched until cutover.
    if (cp.staged === undefined) {
      cp.staged = canStage(c.target);
      await c.store.save(cp);
    }
    const rate = rateMeter();
    let done = targets.reduce((n, [, t]) => n + t.recordsDone, 0);
    const t0 = performance.now();
    // Up to --workers batches in flight (over all collections); staged files are read in order, so at
    // most `workers` batches are in memory. Done batches are recorded by index (a contiguous prefix
    // plus the ones finished out of order), so a resume sends exactly the others.
    const workers = Math.max(1, o.workers);
    const inflight = new Set<Promise<void>>();
    let failure: unknown;
    for (const [name, t] of targets) {
      const into = writeName(c, name);
      await c.target!.ensureCollection({ ...c.transform!.targetCollection(name, sourceOf(c, name)), name: into, dimension: t.dimension });
      t.doneAbove ??= [];
      if (t.expected === 0) continue; // an empty collection: created, nothing staged
      let index = 0;
      for await (const batch of readBatches(stagedFile(cp, name), cp.batchSize)) {
        o.signal.throwIfAborted();
        if (failure) throw failure;
        const i = index++;
        if (i < t.batchesDone || t.doneAbove.includes(i)) {
          c.summary.import.batchesSkipped++;
          continue;
        }
        while (inflight.size >= workers) await Promise.race(inflight);
        if (failure) throw failure;
        const p: Promise<void> = (async () => {
          await sendBatch(c, name, into, t, i, batch);
          done += batch.length;
          progress(`${done}/${totalRecords} records, ${rate(done)}${etaOf(rate, done, totalRecords)}`);
        })().catch((e) => { failure ??= e; }).finally(() => { inflight.delete(p); });
        inflight.add(p);
      }
    }
    await Promise.all(inflight);
    if (failure) throw failure;
    const secs = (performance.now() - t0) / 1000;
    if (secs > 0 && c.summary.import.recordsSent) c.summary.import.recordsPerSecond = Math.round(c.summary.import.recordsSent / secs);
    cp.phases.import = 'done';
    await c.store.save(cp);
    const { batchesSent, batchesSkipped, recordsSent } = c.summary.import;
    return finished(`${recordsSent} records in ${batchesSent} batches of up to ${cp.batchSize}` +
      (batchesSkipped ? `, ${batchesSkipped} batches done by the interrupted run` : '') +
      (c.summary.import.recordsPerSecond ? ` (${c.summary.import.recordsPerSecond} records/s)` : ''));
  },

  plan: (p) => ({ commands: [], notes: [`overlapped with export, transform and validation: each batch upserted into staging collections NAME__ferry_<run id> as soon as it is full, several in flight (a .jsonl target: in place, after the transform) in batches of up to ${p.batchSize} (target max ${p.targetMaxBatchSize}; fewer for long embeddings, to keep memory flat), retried with backoff; checkpoint ${path.join(p.checkpointDir, CHECKPOINT_FILE)} after each batch`] }),
};

/** --batch-size, else the target's max; never above the max (the server rejects larger writes). */
function chooseBatchSize(c: MigrateCtx): number {
  // The widest vectors known: the targets' (staged path), else those the transform step planned
  // (read from the source's first record) or the source collections' (the stream creates its
  // targets as records come); 1536 when none is known. (An empty list once gave memoryCap(1): the
  // server's max batch, ~3 batches of 5,461 records held by the stream.)
  const dims = [
    ...Object.values(c.cp.targets).map((t) => t.dimension),
    ...[...(c.planned?.values() ?? [])].map((t) => t.dimension),
    ...c.collections.map((col) => col.dimension),
  ];
  const known = dims.filter((d): d is number => typeof d === 'number' && d > 0);
  const cap = memoryCap(known.length ? Math.max(...known) : 1536);
  if (c.o.batchSize && c.o.batchSize > c.maxBatch) {
    c.summary.warnings.push(`--batch-size ${c.o.batchSize} is above the target's max batch size ${c.maxBatch}: using ${c.maxBatch}`);
    return c.maxBatch;
  }
  return c.o.batchSize ?? Math.max(1, Math.min(c.maxBatch, cap));
}
