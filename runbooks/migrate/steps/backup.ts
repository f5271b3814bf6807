/** 4. backup: the target collections about to be written, exported to the staging dir's backup.jsonl (the restore point). */
import fs from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../../../lib/common/errors.ts';
import { JsonlEndpoint } from '../../../lib/migrate/jsonl-endpoint.ts';
import { previousOf } from '../../../lib/migrate/cutover.ts';
import { canStage } from '../../../lib/migrate/staging.ts';
import type { Step } from '../../../lib/engine/step.ts';
import type { CollectionInfo } from '../../../lib/migrate/types.ts';
import { done, skipped } from '../../../lib/engine/runner.ts';
import { fillTargets, pageSizeFor, restoredNote, sourceOf, streams, type MigrateCtx, type MigratePlanCtx } from '../context.ts';

export const backup: Step<MigrateCtx, MigratePlanCtx> = {
  name: 'backup',
  title: 'backup: the target collections about to be written',
  undoText: 'none: the backup is the restore point (chroma-ferry restore)',

  async run(c) {
    const { o, cp } = c;
    // Overlapped: the target collections known before the first record (the others are checked as they appear).
    const names = streams(c) ? [...(c.planned?.keys() ?? [])] : Object.keys(cp.targets);
    c.existedBefore = await c.target!.existing(names);
    fillTargets(c);
    if (o.dryRun) return skipped('--dry-run');
    if (cp.phases.backup) return restoredNote(c, 'backup');
    // Refuse a target collection whose distance differs before anything is written.
    for (const name of names) refuseExisting(c, name, c.existedBefore.get(name), cp.targets[name]?.dimension ?? c.planned?.get(name)?.dimension ?? null);
    // A name the cutover could not switch (Qdrant: a collection where the alias goes) is refused now, before any write.
    if (canStage(c.target) && c.target.cutoverKind === 'alias') for (const name of names) await previousOf(c.target, name, '');
    const { file, records } = await writeBackup(c, names);
    cp.backupFile = file;
    cp.phases.backup = 'done';
    c.summary.backupFile = file;
    await c.store.save(cp);
    return done(`${c.existedBefore.size} existing collections (${records} records) saved to ${file}`);
  },

  plan: (p) => ({ commands: [], notes: [`export the target collections about to be written to ${p.checkpointDir}/<run>/backup.jsonl (the restore point)`] }),
};

/**
 * `names` (the target collections the run writes; those that exist now in `c.existedBefore`)
 * exported to the staging dir's backup.jsonl, its header listing them all (restore removes the
 * ones that did not exist). Written again by an overlapped run whose records named more.
 */
export async function writeBackup(c: MigrateCtx, names: string[]): Promise<{ file: string; records: number }> {
  const file = path.join(c.cp.stagingDir, 'backup.jsonl');
  await fs.rm(file, { force: true });
  const backup = new JsonlEndpoint(file);
  await backup.openForWriting({ resume: false, touched: names, transform: c.cp.transformRecord });
  let records = 0;
  try {
    for (const info of c.existedBefore.values()) {
      await backup.ensureCollection(info);
      for await (const page of c.target!.read(info, pageSizeFor(c, info), c.o.signal)) {
        await backup.upsert(info.name, page);
        records += page.length;
      }
    }
  } finally {
    await backup.close();
  }
  return { file, records };
}

/** A target collection that exists with another distance or vector size: refused, naming the fix. */
export function refuseExisting(c: MigrateCtx, name: string, have: CollectionInfo | undefined, dim: number | null): void {
  const want = c.transform!.targetCollection(name, sourceOf(c, name));
  if (have && (have.space !== want.space || (have.dimension !== null && dim !== null && have.dimension !== dim))) {
    throw new UserError(
      `collection ${name} exists on ${c.target!.label} with distance ${have.space}${have.dimension !== null ? ` and size ${have.dimension}` : ''}, ` +
        `the migrated records need ${want.space}${dim !== null ? ` and size ${dim}` : ''}: migrate into another name (--rename ${name}=NEW) or delete it first`,
    );
  }
}
