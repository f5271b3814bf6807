/** 3. transform + validate: each exported record into its target collection's staged file; the --min-valid gate. */
import { createWriteStream, type WriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../../../lib/common/errors.ts';
import { readJsonl } from '../../../lib/migrate/jsonl-lines.ts';
import type { MigrationRecord } from '../../../lib/migrate/types.ts';
import { RecordValidator } from '../../../lib/migrate/validate.ts';
import type { Step } from '../../../lib/engine/step.ts';
import { done } from '../../../lib/engine/runner.ts';
import { exportFile, fillTargets, pct, restoredNote, stagedFile, type MigrateCtx, type MigratePlanCtx } from '../context.ts';

export const transform: Step<MigrateCtx, MigratePlanCtx> = {
  name: 'transform',
  title: 'transform + validate: each record into its target collection',
  undoText: 'none: local staging files only',

  async run(c, progress) {
    const { o, cp } = c;
    if (cp.phases.transform) return restoredNote(c, 'transform');
    const stagedDir = path.join(cp.stagingDir, 'staged');
    // `none` without renames stages every valid record unchanged: when none is rejected, the staged
    // file is the export file (a hard link), so the records are parsed to validate but not rewritten.
    const identity = o.transform === 'none' && Object.keys(o.renames ?? {}).length === 0;
    let staged = await stageRecords(c, stagedDir, progress, !identity);
    if (identity && staged.validator.valid === staged.validator.total) {
      for (const col of c.collections) {
        if (!staged.writers.has(col.name)) continue; // an empty collection: nothing staged
        await fs.link(exportFile(cp, col.name), stagedFile(cp, col.name)).catch(() => fs.copyFile(exportFile(cp, col.name), stagedFile(cp, col.name)));
      }
      await fs.writeFile(path.join(cp.stagingDir, 'rejected.jsonl'), '');
    } else if (identity) {
      staged = await stageRecords(c, stagedDir, progress, true);
    }
    const { validator, writers } = staged;
    const ranked = validator.ranked();
    cp.validation = { total: validator.total, valid: validator.valid, issues: ranked };
    c.summary.validation = { ...cp.validation, validShare: validator.validShare };
    await c.log.write({ event: 'validation', ...c.summary.validation });
    if (validator.validShare < o.minValid) {
      const top = ranked.slice(0, 3).map((i) => `${i.issue} (${i.records})`).join(', ');
      throw new ValidationGateError(
        `validation gate: ${validator.valid}/${validator.total} records valid (${pct(validator.validShare)}), under --min-valid ${o.minValid}; ` +
          `most frequent issues: ${top}; nothing was written (rejected records listed in ${path.join(cp.stagingDir, 'rejected.jsonl')})`,
      );
    }
    cp.targets = {};
    for (const [name, w] of writers) {
      cp.targets[name] = { expected: w.ids.size, from: w.from, dimension: validator.dimensionOf(name), batchesDone: 0, recordsDone: 0 };
    }
    cp.phases.transform = 'done';
    await c.store.save(cp);
    fillTargets(c);
    return done(`${validator.valid}/${validator.total} valid (${pct(validator.validShare)}) into ${writers.size} target collections` +
      (ranked.length ? `; issues: ${ranked.slice(0, 3).map((i) => `${i.issue} ${i.records}`).join(', ')}` : ''));
  },

  plan: (p) => ({ commands: [], notes: [`apply ${p.transform}, validate every record (ids, embeddings, NaN, dimension${p.transform === 'seed-schema' ? ', schema fields and types' : ''}); stop before any write under --min-valid`] }),
};

/**
 * Transform + validate every exported record into its target collection; with `write`, valid
 * records go to the staged files and rejected ones (with their issues) to rejected.jsonl.
 */
async function stageRecords(c: MigrateCtx, stagedDir: string, progress: (line: string) => void, write: boolean): Promise<{
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
        const issues = validator.check(t.collection, t.record, c.transform!.schemaOf(t.collection));
        const refused = issues.length ? null : c.target!.refuseRecord?.(t.record);
        if (refused) throw new UserError(`${refused}; nothing was written`);
        if (issues.length) {
          if (rejected) await put(rejected, `${JSON.stringify({ collection: t.collection, from: col.name, id: t.record.id, issues })}\n`);
          continue;
        }
        let w = writers.get(t.collection);
        if (!w) {
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

/** The validation gate stopped the run before any write. */
export class ValidationGateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ValidationGateError';
  }
}
