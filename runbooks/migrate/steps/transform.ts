/**
 * 3. transform + validate: each exported record into its target collection's staged file; the
 * --min-valid gate. Everything the target would refuse is found here, before the first write:
 * its rules for metadata (counted invalid, per record, with the field and the rule), for
 * collection names and, for an empty collection, whether it can be created (refused, exit 2).
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../../../lib/common/errors.ts';
import { readJsonl } from '../../../lib/migrate/jsonl-lines.ts';
import type { TargetRules } from '../../../lib/migrate/target-rules.ts';
import type { CollectionInfo, MigrationRecord } from '../../../lib/migrate/types.ts';
import { describeIssue, RecordValidator } from '../../../lib/migrate/validate.ts';
import type { Step } from '../../../lib/engine/step.ts';
import { done, type StepOutcome } from '../../../lib/engine/runner.ts';
import { exportFile, fillTargets, pct, restoredNote, stagedFile, streams, type MigrateCtx, type MigratePlanCtx } from '../context.ts';

export const transform: Step<MigrateCtx, MigratePlanCtx> = {
  name: 'transform',
  title: 'transform + validate: each record into its target collection',
  undoText: 'none: local staging files only',

  async run(c, progress) {
    const { o, cp } = c;
    if (cp.phases.transform) return restoredNote(c, 'transform');
    const rules = (await c.target!.targetRules?.()) ?? null;
    c.rules = rules;
    if (streams(c)) return plannedTargets(c, rules);
    const stagedDir = path.join(cp.stagingDir, 'staged');
    // `none` without renames stages every valid record unchanged: when none is rejected, the staged
    // file is the export file (a hard link), so the records are parsed to validate but not rewritten.
    const identity = o.transform === 'none' && Object.keys(o.renames ?? {}).length === 0;
    let staged = await stageRecords(c, stagedDir, progress, !identity, rules);
    if (identity && staged.validator.valid === staged.validator.total) {
      for (const col of c.collections) {
        if (!staged.writers.has(col.name)) continue; // an empty collection: nothing staged
        await fs.link(exportFile(cp, col.name), stagedFile(cp, col.name)).catch(() => fs.copyFile(exportFile(cp, col.name), stagedFile(cp, col.name)));
      }
      await fs.writeFile(path.join(cp.stagingDir, 'rejected.jsonl'), '');
    } else if (identity) {
      staged = await stageRecords(c, stagedDir, progress, true, rules);
    }
    const { validator, writers } = staged;
    const ranked = validator.ranked();
    cp.validation = { total: validator.total, valid: validator.valid, issues: ranked };
    c.summary.validation = { ...cp.validation, validShare: validator.validShare };
    await c.log.write({ event: 'validation', ...c.summary.validation });
    if (validator.validShare < o.minValid) {
      const top = ranked.slice(0, 3).map(describeIssue).join(', ');
      throw new ValidationGateError(
        `validation gate: ${validator.valid}/${validator.total} records valid (${pct(validator.validShare)}), under --min-valid ${o.minValid}; ` +
          `most frequent issues: ${top}; nothing was written (rejected records listed in ${path.join(cp.stagingDir, 'rejected.jsonl')})`,
      );
    }
    cp.targets = {};
    for (const [name, w] of writers) {
      cp.targets[name] = { expected: w.ids.size, from: w.from, dimension: validator.dimensionOf(name), batchesDone: 0, recordsDone: 0 };
    }
    const empty = await emptyTargets(c, rules, c.collections.filter((s) => (c.cp.exported[s.name] ?? 0) === 0), (name) => Boolean(c.cp.targets[name]));
    for (const [name, t] of empty) cp.targets[name] = { expected: 0, from: t.from, dimension: t.dimension, batchesDone: 0, recordsDone: 0 };
    cp.phases.transform = 'done';
    await c.store.save(cp);
    fillTargets(c);
    return done(`${validator.valid}/${validator.total} valid (${pct(validator.validShare)}) into ${writers.size + empty.size} target collections` +
      (empty.size ? ` (${empty.size} empty)` : '') +
      (ranked.length ? `; issues: ${ranked.slice(0, 3).map((i) => `${i.issue} ${i.records}`).join(', ')}` : ''));
  },

  plan: (p) => ({ commands: [], notes: [
    `overlapped with export and import: apply ${p.transform} to each record as it streams from the source, validate it (ids, embeddings, NaN, dimension${p.transform === 'seed-schema' ? ', schema fields and types' : ''}, the target's rules for metadata types, lists, keys and sizes) before its batch is sent; under --min-valid (decided after the last record, before the cutover) the staging collections are dropped`,
    'refuse a target collection name the target does not accept, and an empty collection the target cannot create',
  ] }),
};

/**
 * Overlapped run: what can be checked before the first record is read. The target collections
 * known in advance (the `none` transform's names, after --rename) and the empty ones get the
 * target's name rules and, for empty ones, whether they can be created; records are transformed
 * and validated as they stream (runbooks/migrate/stream.ts).
 */
async function plannedTargets(c: MigrateCtx, rules: TargetRules | null): Promise<StepOutcome> {
  const planned = new Map<string, { from: string; dimension: number | null; empty: boolean }>();
  if (c.o.transform === 'none') {
    for (const col of c.collections.filter((s) => s.count > 0)) {
      const name = c.transform!.emptyTarget(col)!;
      refuseCollectionName(rules, name, col.name);
      planned.set(name, { from: col.name, dimension: col.dimension ?? (await firstDimension(c, col)), empty: false });
    }
  }
  const empty = await emptyTargets(c, rules, c.collections.filter((s) => s.count === 0), (name) => planned.has(name));
  for (const [name, t] of empty) planned.set(name, { ...t, empty: true });
  c.planned = planned;
  return done(`overlapped with export and import (timed there): each record transformed and validated as it streams, before its batch is sent; ` +
    `${planned.size} target collections known before the first record${empty.size ? ` (${empty.size} empty)` : ''}, names checked`);
}

/** The vector size of a collection's first record (one record read), so an existing target of another size is refused before any write. */
async function firstDimension(c: MigrateCtx, col: CollectionInfo): Promise<number | null> {
  for await (const page of c.source!.read(col, 1, c.o.signal)) return page[0]?.embedding?.length || null;
  return null;
}

/**
 * Transform + validate every exported record into its target collection; with `write`, valid
 * records go to the staged files and rejected ones (with their issues) to rejected.jsonl.
 */
async function stageRecords(c: MigrateCtx, stagedDir: string, progress: (line: string) => void, write: boolean, rules: TargetRules | null): Promise<{
  validator: RecordValidator; writers: Map<string, { ids: Set<string>; from: string }>;
}> {
  const { cp } = c;
  await fs.rm(stagedDir, { recursive: true, force: true });
  await fs.mkdir(stagedDir, { recursive: true });
  const validator = new RecordValidator();
  const writers = new Map<string, { out?: WriteStream; ids: Set<string>; from: string }>();
  const rejected = write ? createWriteStream(path.join(cp.stagingDir, 'rejected.jsonl')) : undefined;
  const put = (ws: WriteStream, line: string) => new Promise<void>((res, rej) => ws.write(line, (e) => (e ? rej(e) : res())));
  for (const col of c.collections) {
    for await (const r of readJsonl<MigrationRecord>(exportFile(cp, col.name))) {
      for (const t of await c.transform!.apply(r, col)) {
        const issues = validator.check(t.collection, t.record, c.transform!.schemaOf(t.collection), rules);
        const refused = issues.length ? null : c.target!.refuseRecord?.(t.record);
        if (refused) throw new UserError(`${refused}; nothing was written`);
        if (issues.length) {
          const problems = issues.map((i) => ({ issue: i.issue, field: i.field, rule: i.rule, text: i.text }));
          if (rejected) await put(rejected, `${JSON.stringify({ collection: t.collection, from: col.name, id: t.record.id, issues: problems })}\n`);
          if (write) await logInvalid(c, { collection: t.collection, from: col.name, id: t.record.id, issues: problems });
          continue;
        }
        let w = writers.get(t.collection);
        if (!w) {
          refuseCollectionName(rules, t.collection, col.name);
          w = { out: write ? createWriteStream(stagedFile(cp, t.collection)) : undefined, ids: new Set(), from: col.name };
          writers.set(t.collection, w);
        }
        w.ids.add(t.record.id);
        if (w.out) await put(w.out, `${JSON.stringify(t.record)}\n`);
      }
      if (validator.total % 500 === 0) progress(`${validator.total} records, ${validator.total - validator.valid} with issues`);
    }
  }
  await Promise.all([...writers.values()].map((w) => new Promise<void>((res) => (w.out ? w.out.end(res) : res()))));
  if (rejected) await new Promise<void>((res) => rejected.end(res));
  return { validator, writers };
}

/** Invalid records logged one line each (record id, field, rule), up to this many; all are in rejected.jsonl. */
const LOGGED_INVALID = 1000;
const loggedInvalid = new WeakMap<MigrateCtx, number>();

export async function logInvalid(c: MigrateCtx, line: { collection: string; from: string; id: string; issues: { field?: string; rule: string; text: string }[] }): Promise<void> {
  const n = (loggedInvalid.get(c) ?? 0) + 1;
  loggedInvalid.set(c, n);
  if (n <= LOGGED_INVALID) await c.log.write({ event: 'invalid_record', ...line });
  else if (n === LOGGED_INVALID + 1) await c.log.write({ event: 'invalid_record', note: `more than ${LOGGED_INVALID} invalid records: the others are listed in ${path.join(c.cp.stagingDir, 'rejected.jsonl')} only` });
}

/** A target collection name the target does not accept: one line (the name, the rule, the fix), before any write. */
export function refuseCollectionName(rules: TargetRules | null, name: string, from: string): void {
  const problem = rules?.collectionNameProblem(name);
  if (!problem) return;
  throw new UserError(
    `target collection ${JSON.stringify(name)}${from !== name ? ` (from source collection ${JSON.stringify(from)})` : ''} is not a valid ${rules!.target} collection name: ${problem}; ` +
      `write it under a valid name with --rename ${shellWord(`${name}=NEW_NAME`)} (or in your --transform); nothing was written`,
  );
}

function shellWord(s: string): string {
  return /^[A-Za-z0-9._=\/-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Source collections without records, created empty on the target (with their space, HNSW
 * settings and metadata) under the transform's name for them; a target that needs a vector size
 * to create a collection gets the source's, else the collection must exist there already.
 */
async function emptyTargets(c: MigrateCtx, rules: TargetRules | null, sources: CollectionInfo[], known: (name: string) => boolean): Promise<Map<string, { from: string; dimension: number | null }>> {
  const out = new Map<string, { from: string; dimension: number | null }>();
  for (const s of sources) {
    const name = c.transform!.emptyTarget(s);
    if (name === null) {
      c.summary.warnings.push(`source collection ${s.name} has no records and --transform ${c.o.transform} does not name its target (export emptyCollection(ctx) from the module): not created`);
      continue;
    }
    if (known(name) || out.has(name)) continue;
    refuseCollectionName(rules, name, s.name);
    out.set(name, { from: s.name, dimension: s.dimension });
  }
  if (rules?.needsVectorSize) {
    const unsized = [...out].filter(([, t]) => !t.dimension).map(([n]) => n);
    const existing = unsized.length ? await c.target!.existing(unsized) : new Map();
    const missing = unsized.filter((n) => !existing.has(n));
    if (missing.length) {
      const [first] = missing;
      throw new UserError(
        `collection ${first} (from source collection ${out.get(first!)!.from}) is empty, so its vector size is unknown, and ${rules.target} needs one to create a collection: ` +
          `create it on the target first with the size you want (an existing collection is kept), or leave it out with --filter-collection; nothing was written` +
          (missing.length > 1 ? ` (also: ${missing.slice(1).join(', ')})` : ''),
      );
    }
  }
  return out;
}

/** The validation gate stopped the run before any write. */
export class ValidationGateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ValidationGateError';
  }
}
