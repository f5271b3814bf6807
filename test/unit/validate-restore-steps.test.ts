/**
 * validate and restore as Step objects (runbooks/validate/, runbooks/restore/): their step lists
 * (order, needs, undo), and `--plan` is what the steps do. Restore's steps run against an
 * in-memory recording target: the writes each made, in order, are exactly the writes its `plan()`
 * prints. The gate runs for real on two export files (no servers): the old collections its
 * `expected` step read are exactly the reads its `plan()` prints.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UserError } from '../../lib/common/errors.ts';
import { JsonlEndpoint } from '../../lib/migrate/jsonl-endpoint.ts';
import type { CollectionInfo, MigrationRecord } from '../../lib/migrate/types.ts';
import type { AnyStep } from '../../lib/engine/step.ts';
import { describeWrite, restoreBatchSize, type RestoreWrite } from '../../runbooks/restore/context.ts';
import { newRestoreCtx, RESTORE_STEP_OBJECTS, RESTORE_STEPS } from '../../runbooks/restore/index.ts';
import { formatRestorePlan, restorePlanOf } from '../../runbooks/restore/plan.ts';
import { readBackup, refuseUnstorable } from '../../runbooks/restore/steps/connect.ts';
import { newValidateCtx, prepareValidate, runValidate, VALIDATE_STEP_OBJECTS, VALIDATE_STEPS, type ValidateOptions } from '../../runbooks/validate/index.ts';
import { formatValidatePlan, planValidate } from '../../runbooks/validate/plan.ts';
import { describeOldRead } from '../../runbooks/validate/steps/expected.ts';
import { RecordingSink, recordingReads, type SinkWrite } from '../helpers/recording-endpoint.ts';

let root: string;
before(async () => { root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-gate-steps-')); });
after(() => fs.rm(root, { recursive: true, force: true }));

const signal = new AbortController().signal;

function records(prefix: string, n: number, extra: (i: number) => Record<string, string | number> = () => ({})): MigrationRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `${prefix}-${i}`, embedding: [i + 1, (i * 7) % 5, 0.5 * i, 1], document: `${prefix} document ${i}`, metadata: { n: i, ...extra(i) },
  }));
}

const info = (name: string, space: CollectionInfo['space'] = 'l2'): Omit<CollectionInfo, 'count'> => ({ name, space, metadata: { about: name }, dimension: 4 });

/** An export file of these collections; `touched` in its header as migrate writes its backup. */
async function exportFile(name: string, cols: { info: Omit<CollectionInfo, 'count'>; records: MigrationRecord[] }[], touched?: string[]): Promise<string> {
  const file = path.join(root, name);
  const e = new JsonlEndpoint(file);
  await e.openForWriting({ resume: false, touched });
  for (const c of cols) {
    await e.ensureCollection(c.info);
    await e.upsert(c.info.name, c.records);
  }
  await e.close();
  return file;
}

function assertStepList<C, P>(steps: readonly AnyStep<C, P>[], want: Record<string, readonly string[]>): void {
  assert.deepEqual(steps.map((s) => s.name), Object.keys(want), 'the steps, in order');
  steps.forEach((s, i) => {
    assert.deepEqual([...(s.needs ?? [])], want[s.name], `${s.name} needs`);
    for (const n of s.needs ?? []) assert.ok(steps.slice(0, i).some((e) => e.name === n), `${s.name} needs ${n}, an earlier step`);
    assert.ok(s.undoText.length > 0, `${s.name} says what undoes it`);
  });
}

describe('the step lists', () => {
  it('restore: connect, remove, recreate, verify; each need an earlier step; no undo of its own (a restore is the undo of a migration)', () => {
    assertStepList(RESTORE_STEP_OBJECTS, { connect: [], remove: ['connect'], recreate: ['connect'], verify: ['connect', 'recreate'] });
    assert.deepEqual(RESTORE_STEPS, ['connect', 'remove', 'recreate', 'verify']);
    for (const s of RESTORE_STEP_OBJECTS) assert.equal(s.undo, undefined, `${s.name}: none, as its undoText says`);
    for (const name of ['remove', 'recreate']) {
      assert.match(RESTORE_STEP_OBJECTS.find((s) => s.name === name)!.undoText, /run restore again to finish an interrupted one/, `${name} says why it has no undo`);
    }
  });

  it('validate: connect, expected, compare; each need an earlier step; all read-only', () => {
    assertStepList(VALIDATE_STEP_OBJECTS, { connect: [], expected: ['connect'], compare: ['connect', 'expected'] });
    assert.deepEqual(VALIDATE_STEPS, ['connect', 'expected', 'compare']);
    for (const s of VALIDATE_STEP_OBJECTS) assert.equal(s.undo, undefined, `${s.name} writes nothing to undo`);
  });
});

/** The recorded writes of a restore step as the RestoreWrites they carry out (one upsert entry per collection). */
function asRestoreWrites(step: string, writes: SinkWrite[], batchSize: number): RestoreWrite[] {
  const out: RestoreWrite[] = [];
  for (const w of writes) {
    if (w.op === 'deleteCollection') out.push({ op: step === 'remove' ? 'remove' : 'drop', collection: w.collection });
    else if (w.op === 'ensureCollection') out.push({ op: 'create', collection: w.collection });
    else {
      assert.ok(w.records <= batchSize, `${w.collection}: a batch of ${w.records}, at most ${batchSize}`);
      const last = out.at(-1);
      if (last?.op === 'upsert' && last.collection === w.collection) last.records += w.records;
      else out.push({ op: 'upsert', collection: w.collection, records: w.records, batchSize });
    }
  }
  return out;
}

describe('restore --plan is what the steps write', () => {
  it('each step, run against a recording target, makes exactly the writes its plan() prints, in order', async () => {
    const backup = await exportFile('backup.jsonl', [
      { info: info('books', 'cosine'), records: records('book', 5) },
      { info: info('films'), records: records('film', 2) },
      { info: info('empty'), records: [] },
    ], ['books', 'films', 'empty', 'books_v2', 'never_written']);
    const sink = new RecordingSink({ maxBatch: 2 });
    sink.seed(info('books', 'cosine'), records('migrated', 7)); // the migration's writes
    sink.seed(info('books_v2'), records('new', 3)); // created by the migration
    sink.seed(info('unrelated'), records('other', 4)); // not the migration's: left alone

    const ctx = newRestoreCtx({ backup, targetUrl: 'http://127.0.0.1:9', sample: 3, output: 'json', signal });
    // connect, without opening --target-url: the backup read as connect reads it, the target given.
    Object.assign(ctx, await readBackup(ctx.backup));
    ctx.target = sink;
    await refuseUnstorable(ctx.backup, ctx, sink);
    ctx.report.steps[0]!.status = 'done';

    // The read-only look --plan takes, before anything runs.
    const names = ['books', 'films', 'empty', 'books_v2', 'never_written'];
    const p = { ...ctx, backup: ctx.backup.file, target: sink.label, onTarget: new Set((await sink.existing(names)).keys()), batchSize: restoreBatchSize(await sink.maxBatchSize()), sample: 3 };
    const plan = restorePlanOf(p);

    const ran = new Map<string, SinkWrite[]>();
    for (const step of RESTORE_STEP_OBJECTS.slice(1)) {
      const mark = sink.writes.length;
      const out = await step.run(ctx, () => {});
      assert.equal(out.status, 'done', `${step.name} ran`);
      ran.set(step.name, sink.writes.slice(mark));
    }
    for (const step of ['remove', 'recreate']) {
      const written = asRestoreWrites(step, ran.get(step)!, p.batchSize).map((w) => describeWrite(w, sink.label));
      assert.deepEqual(written, plan.steps.find((s) => s.name === step)!.does, `${step}: what ran is what the plan prints`);
    }
    assert.deepEqual(ran.get('verify'), [], 'verify writes nothing');

    // Not vacuous: the plan names every write, and the target is the backup's content.
    assert.deepEqual(plan.steps.find((s) => s.name === 'remove')!.does, ['delete collection books_v2 on recording-sink (created by the migration: touched, and not in the backup)']);
    assert.equal(ran.get('recreate')!.filter((w) => w.op === 'upsert').length, 3 + 1, 'books in 3 batches of up to 2, films in 1');
    assert.match(formatRestorePlan(plan), /3\. recreate: drop collection books on recording-sink/);
    assert.deepEqual(Object.fromEntries([...sink.collections].map(([n, c]) => [n, [...c.records.keys()].sort()])), {
      books: records('book', 5).map((r) => r.id).sort(), films: ['film-0', 'film-1'], empty: [], unrelated: records('other', 4).map((r) => r.id).sort(),
    });
    assert.deepEqual(ctx.report.removed, ['books_v2']);
    assert.deepEqual(ctx.report.mismatches, []);
    assert.equal(ctx.report.sampled, 3 + 2);
  });

  it('a record the target cannot store is refused by connect, before any write: one line naming it', async () => {
    const backup = await exportFile('clash.jsonl', [
      { info: info('books'), records: records('book', 3) },
      { info: info('films'), records: records('film', 3, (i): Record<string, string> => (i === 2 ? { document: 'a reserved key' } : {})) },
    ], ['books', 'films']);
    const sink = new RecordingSink({ maxBatch: 10, refuse: (r) => ('document' in (r.metadata ?? {}) ? `record ${r.id}: metadata key "document" is reserved here` : null) });
    sink.seed(info('books'), records('migrated', 4));
    const b = new JsonlEndpoint(backup);
    const facts = await readBackup(b);
    await assert.rejects(refuseUnstorable(b, facts, sink), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.equal(e.message, `--backup ${backup}: collection films: record film-2: metadata key "document" is reserved here; restore writes records unchanged, so nothing was written`);
      return true;
    });
    assert.deepEqual(sink.writes, []);
  });
});

describe('validate --plan is what the steps read', () => {
  it('the gate on two export files: expected reads exactly the old collections its plan() prints; compare reads the expected ones from the new', async () => {
    const cols = [{ info: info('books', 'cosine'), records: records('book', 6) }, { info: info('films'), records: records('film', 3) }];
    const oldUrl = await exportFile('old.jsonl', cols);
    const newUrl = await exportFile('new.jsonl', cols);
    const o: ValidateOptions = {
      oldUrl, newUrl, queries: 2, topK: 2, output: path.join(root, 'gate', 'report.md'), autoRollback: false, outputMode: 'json', signal,
    };
    const m = await prepareValidate(o);
    const plan = await planValidate(o, m);

    const staging = await fs.mkdtemp(path.join(root, 'staging-'));
    const ctx = newValidateCtx(o, m, staging);
    const [connect, expected, compare] = VALIDATE_STEP_OBJECTS;
    await connect!.run(ctx, () => {});
    const old = recordingReads(ctx.old!);
    const neu = recordingReads(ctx.neu!);
    ctx.old = old.endpoint;
    ctx.neu = neu.endpoint;
    await expected!.run(ctx, () => {});
    await compare!.run(ctx, () => {});

    const planned = plan.steps.find((s) => s.name === 'expected')!.does.filter((d) => d.startsWith('read '));
    assert.deepEqual(old.reads.map((r) => describeOldRead(r, oldUrl)), planned, 'what expected read is what the plan prints');
    assert.deepEqual(planned, [`read books (6 records) from ${oldUrl} through the transform`, `read films (3 records) from ${oldUrl} through the transform`]);
    assert.deepEqual(neu.reads, [{ collection: 'books', records: 6 }, { collection: 'films', records: 3 }], 'compare read each expected collection of the new database');
    assert.match(formatValidatePlan(plan), /if the gate FAILS: rollback_triggered in the report, nothing restored by this run/);

    // The whole gate, as the command runs it: PASSED, its steps reported by name.
    const report = await runValidate(o, m);
    assert.equal(report.overall_status, 'PASSED', JSON.stringify(report.checks.filter((c) => c.status !== 'PASSED')));
    assert.deepEqual(report.steps.map((s) => [s.name, s.status]), [['connect', 'done'], ['expected', 'done'], ['compare', 'done']]);
    assert.equal(JSON.parse(await fs.readFile(path.join(root, 'gate', 'report.json'), 'utf8')).overall_status, 'PASSED');
  });
});
