/**
 * 1. connect: read the backup's header and collections (every line parsed), open the target, and
 * check that the target can store every backed-up record as it is: a record it refuses fails the
 * restore here, before the first write, not after the collections it replaces were dropped.
 */
import { UserError } from '../../../lib/common/errors.ts';
import { openTarget } from '../../../lib/migrate/endpoints.ts';
import type { JsonlEndpoint } from '../../../lib/migrate/jsonl-endpoint.ts';
import type { MigrationSink } from '../../../lib/migrate/types.ts';
import type { Step } from '../../../lib/engine/step.ts';
import { done } from '../../../lib/engine/runner.ts';
import { recordsIn, type RestoreCtx, type RestoreFacts, type RestorePlanCtx } from '../context.ts';

/** The backup's facts: its collections (reading every line) and the collections the migration touched. */
export async function readBackup(backup: JsonlEndpoint): Promise<RestoreFacts> {
  await backup.openForReading('--backup');
  const header = await backup.header();
  const collections = await backup.listCollections();
  return { collections, touched: header?.touched ?? collections.map((x) => x.name) };
}

/** Refused (exit 2, nothing written) when the target cannot store a backed-up record unchanged. */
export async function refuseUnstorable(backup: JsonlEndpoint, f: RestoreFacts, target: MigrationSink, signal?: AbortSignal): Promise<void> {
  const refuse = target.refuseRecord?.bind(target);
  if (!refuse) return;
  for (const col of f.collections) {
    for await (const page of backup.read(col, 500, signal)) {
      for (const r of page) {
        const why = refuse(r);
        if (why) throw new UserError(`--backup ${backup.file}: collection ${col.name}: ${why}; restore writes records unchanged, so nothing was written`);
      }
    }
  }
}

export const connect: Step<RestoreCtx, RestorePlanCtx> = {
  name: 'connect',
  title: 'connect: read the backup, open the target',
  undoText: 'none: nothing written yet',

  async run(c) {
    Object.assign(c, await readBackup(c.backup));
    c.target = (await openTarget(c.o.targetUrl, { resume: true, dryRun: false, scope: c.o.targetScope })).endpoint;
    await refuseUnstorable(c.backup, c, c.target, c.o.signal);
    return done(`${c.collections.length} collections in the backup (${recordsIn(c.collections)} records), ${c.touched.length} touched by the migration`);
  },

  plan: (p) => ({
    commands: [],
    notes: [`read ${p.backup}: ${p.collections.length} collections (${recordsIn(p.collections)} records), ${p.touched.length} touched by the migration; open ${p.target}; check it can store every record unchanged`],
  }),
};
