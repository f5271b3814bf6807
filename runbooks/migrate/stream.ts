/**
 * The overlapped migration (a target that stages, not a dry run): each source page flows through
 * the transform and the validation into per-target batches, and full batches go to the staging
 * collections while the next pages are read. Bounded: one page read ahead (the source), one
 * partial batch per target (flushed early past two batches in all), `--workers` batches in
 * flight; a full pipe stops the reading (backpressure). Batches are cut in stream order, so a
 * `--resume` re-reads the source and sends exactly the batches the checkpoint does not list.
 *
 * What can be checked before the first write still is (steps/transform.ts, steps/backup.ts); what
 * needs the records (a target collection's name, size or the records' metadata) is checked before
 * the batch that holds it is sent. The valid-share gate (`--min-valid`) is decided after the last
 * record: under it, or on a refusal, the staging collections are dropped and the target is as before.
 */
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../../lib/common/errors.ts';
import { SourceChangedError } from '../../lib/migrate/chroma-endpoint.ts';
import { previousOf } from '../../lib/migrate/cutover.ts';
import { IdSet } from '../../lib/migrate/id-set.ts';
import { canStage } from '../../lib/migrate/staging.ts';
import type { CollectionInfo, MigrationRecord } from '../../lib/migrate/types.ts';
import { describeIssue, RecordValidator } from '../../lib/migrate/validate.ts';
import { etaOf, fillTargets, pageSizeFor, pct, rateMeter, sampleFile, writeName, type MigrateCtx } from './context.ts';
import { sendBatch } from './batch-progress.ts';
import { heapGarbageCollector } from '../../lib/common/full-collection.ts';
import { dropStaging } from './staging-drop.ts';
import { refuseExisting, writeBackup } from './steps/backup.ts';
import { logInvalid, refuseCollectionName, ValidationGateError } from './steps/transform.ts';

type TargetEntry = MigrateCtx['cp']['targets'][string];

/** One target collection of the stream: its partial batch, its ids (the expected count), its verify sample. */
interface TargetStream {
  name: string;
  into: string;
  from: CollectionInfo;
  entry: TargetEntry;
  batch: MigrationRecord[];
  /** Index of the next batch cut (stream order). */
  index: number;
  /** Distinct ids sent (the expected count): compact, outside the heap (lib/migrate/id-set.ts). */
  ids: IdSet;
  sample: MigrationRecord[];
  /** Every `every`-th record is sampled, up to --verify-sample. */
  every: number;
  seen: number;
  created?: Promise<void>;
}

/** Stream every source record into the staging collections; returns the import step's note. */
export async function streamIntoStaging(c: MigrateCtx, progress: (line: string) => void): Promise<string> {
  const { o, cp } = c;
  const total = c.collections.reduce((n, s) => n + s.count, 0);
  await c.prepareWrite!([...(c.planned?.keys() ?? [])]);
  cp.staged = true;
  await c.store.save(cp);
  await fs.rm(path.join(cp.stagingDir, 'sample'), { recursive: true, force: true });
  await fs.mkdir(path.join(cp.stagingDir, 'sample'), { recursive: true });
  const rejected = createWriteStream(path.join(cp.stagingDir, 'rejected.jsonl'));
  const validator = new RecordValidator();
  const targets = new Map<string, TargetStream>();
  const workers = Math.max(1, o.workers);
  const inflight = new Set<Promise<void>>();
  const rate = rateMeter();
  // Pages and batches in flight outlive V8's young generation: without a full collection now and
  // then they pile up in the old one until V8 decides, later the longer the run (the peak would
  // grow with the source's size). Past 64 MB of heap in use, looked at every 500 records read.
  const collectGarbage = heapGarbageCollector(64 * 1024 * 1024, 500);
  let failure: unknown;
  let buffered = 0;
  let read = 0;
  let landed = 0;
  const t0 = performance.now();
  const report = () => progress(`${read}/${total} records read, ${landed} in staging, ${rate(landed)}${etaOf(rate, landed, total)}`);

  const targetOf = (name: string, col: CollectionInfo): TargetStream => {
    let s = targets.get(name);
    if (s) return s;
    if (!c.planned?.has(name)) refuseCollectionName(c.rules ?? null, name, col.name);
    const entry = (cp.targets[name] ??= { expected: 0, from: col.name, dimension: null, batchesDone: 0, doneAbove: [], recordsDone: 0 });
    s = {
      name, into: writeName(c, name), from: col, entry, batch: [], index: 0, ids: new IdSet(), sample: [], seen: 0,
      every: Math.max(1, Math.floor(col.count / Math.max(1, o.verifySample))),
    };
    targets.set(name, s);
    return s;
  };

  /** The staging collection, created once, after the checks the records make possible (size; a name not known before). */
  const created = (s: TargetStream): Promise<void> => (s.created ??= (async () => {
    const dim = validator.dimensionOf(s.name);
    const known = c.planned?.has(s.name);
    refuseExisting(c, s.name, known ? c.existedBefore.get(s.name) : (await c.target!.existing([s.name])).get(s.name), dim);
    if (!known && canStage(c.target) && c.target.cutoverKind === 'alias') await previousOf(c.target, s.name, '');
    await c.target!.ensureCollection({ ...c.transform!.targetCollection(s.name, s.from), name: s.into, dimension: dim });
  })());

  /** The target's partial batch cut as its next batch: skipped when the interrupted run sent it, else sent once a slot is free. */
  const dispatch = async (s: TargetStream): Promise<void> => {
    const batch = s.batch;
    s.batch = [];
    buffered -= batch.length;
    const i = s.index++;
    const e = s.entry;
    if (i < e.batchesDone || e.doneAbove?.includes(i)) {
      c.summary.import.batchesSkipped++;
      landed += batch.length;
      return;
    }
    await created(s);
    while (inflight.size >= workers) await Promise.race(inflight);
    if (failure) throw failure;
    const p: Promise<void> = (async () => {
      await sendBatch(c, s.name, s.into, e, i, batch);
      landed += batch.length;
      report();
    })().catch((err) => { failure ??= err; }).finally(() => { inflight.delete(p); });
    inflight.add(p);
  };

  /** Past two batches held over all targets, the largest partial one goes (deterministic: resume cuts the same batches). */
  const flushLargest = async () => {
    let big: TargetStream | undefined;
    for (const s of targets.values()) if (!big || s.batch.length > big.batch.length) big = s;
    if (big?.batch.length) await dispatch(big);
  };

  try {
    try {
      for (const col of c.collections) {
        let exported = 0;
        for await (const page of c.source!.read(col, pageSizeFor(c, col), o.signal)) {
          exported += page.length;
          read += page.length;
          collectGarbage(page.length);
          for (const r of page) {
            for (const t of await c.transform!.apply(r, col)) {
              const issues = validator.check(t.collection, t.record, c.transform!.schemaOf(t.collection), c.rules);
              const refused = issues.length ? null : c.target!.refuseRecord?.(t.record);
              if (refused) throw new UserError(`${refused}; nothing was written`);
              if (issues.length) {
                const problems = issues.map((x) => ({ issue: x.issue, field: x.field, rule: x.rule, text: x.text }));
                const line = { collection: t.collection, from: col.name, id: t.record.id, issues: problems };
                if (!rejected.write(`${JSON.stringify(line)}\n`)) await new Promise<void>((res) => rejected.once('drain', () => res()));
                await logInvalid(c, line);
                continue;
              }
              const s = targetOf(t.collection, col);
              s.ids.add(t.record.id);
              if (s.seen++ % s.every === 0 && s.sample.length < o.verifySample) s.sample.push(t.record);
              s.batch.push(t.record);
              buffered++;
              if (s.batch.length >= cp.batchSize) await dispatch(s);
              else if (buffered > 2 * cp.batchSize) await flushLargest();
            }
          }
          if (failure) throw failure;
          report();
        }
        cp.exported[col.name] = exported;
      }
    } catch (e) {
      if (e instanceof SourceChangedError) throw new UserError(`${e.message}; stop the writers (or export a copy: pass the persist directory or a snapshot) and run again`);
      throw e;
    }
    for (const s of targets.values()) if (s.batch.length) await dispatch(s);
    await Promise.all(inflight);
    if (failure) throw failure;
    // Source collections without records: their target collections created empty.
    for (const [name, p] of c.planned ?? []) {
      if (!p.empty || targets.has(name)) continue;
      cp.targets[name] ??= { expected: 0, from: p.from, dimension: p.dimension, batchesDone: 0, doneAbove: [], recordsDone: 0 };
      const from = c.collections.find((x) => x.name === p.from)!;
      await c.target!.ensureCollection({ ...c.transform!.targetCollection(name, from), name: writeName(c, name), dimension: p.dimension });
    }
  } catch (e) {
    await Promise.allSettled([...inflight]);
    await new Promise<void>((res) => rejected.end(res));
    if (e instanceof UserError) {
      // Refused: nothing of this run stays on the target.
      const dropped = await dropStaging(c);
      c.liveUntouched = true;
      throw new UserError(`${e.message}${dropped.length ? ` (the ${dropped.length} staging collections already created were dropped)` : ''}`);
    }
    throw e;
  }
  await new Promise<void>((res) => rejected.end(res));

  for (const s of targets.values()) {
    s.entry.expected = s.ids.size;
    s.entry.dimension = validator.dimensionOf(s.name);
    const file = sampleFile(cp, s.name);
    await fs.writeFile(`${file}.partial`, s.sample.map((r) => JSON.stringify(r)).join('\n') + '\n');
    await fs.rename(`${file}.partial`, file);
  }
  const ranked = validator.ranked();
  cp.validation = { total: validator.total, valid: validator.valid, issues: ranked };
  c.summary.validation = { ...cp.validation, validShare: validator.validShare };
  c.summary.collections = c.collections.map((s) => ({ source: s.name, exported: cp.exported[s.name] ?? 0 }));
  await c.log.write({ event: 'validation', ...c.summary.validation });
  fillTargets(c);
  if (validator.validShare < o.minValid) {
    const dropped = await dropStaging(c);
    const top = ranked.slice(0, 3).map(describeIssue).join(', ');
    throw new ValidationGateError(
      `validation gate: ${validator.valid}/${validator.total} records valid (${pct(validator.validShare)}), under --min-valid ${o.minValid}; ` +
        `most frequent issues: ${top}; nothing was written to the live collections: nothing cut over, the ${dropped.length} staging collections dropped ` +
        `(rejected records listed in ${path.join(cp.stagingDir, 'rejected.jsonl')})`,
    );
  }
  // Names only the records revealed (a seed-schema or module transform): the backup (the restore point) taken again with them.
  // The live collections are untouched until the cutover, so it is the target as it was before the run.
  const names = Object.keys(cp.targets);
  if (names.some((n) => !c.planned?.has(n))) {
    c.existedBefore = await c.target!.existing(names);
    await writeBackup(c, names);
    fillTargets(c);
  }
  const secs = (performance.now() - t0) / 1000;
  if (secs > 0 && c.summary.import.recordsSent) c.summary.import.recordsPerSecond = Math.round(c.summary.import.recordsSent / secs);
  cp.phases.import = 'done';
  await c.store.save(cp);
  const { batchesSent, batchesSkipped, recordsSent } = c.summary.import;
  return `overlapped with export, transform and validation: ${read} records read, ${validator.valid}/${validator.total} valid (${pct(validator.validShare)}); ` +
    `${recordsSent} records in ${batchesSent} batches of up to ${cp.batchSize}, up to ${workers} in flight` +
    (batchesSkipped ? `, ${batchesSkipped} batches done by the interrupted run` : '') +
    (c.summary.import.recordsPerSecond ? ` (${c.summary.import.recordsPerSecond} records/s)` : '');
}
