/** 3. recreate: every backed-up collection dropped (when on the target) and re-created with its space, HNSW settings and metadata, then filled in batches. */
import type { Step } from '../../../lib/engine/step.ts';
import { done } from '../../../lib/engine/runner.ts';
import { describeWrite, recordsIn, recreation, restoreBatchSize, type RestoreCtx, type RestorePlanCtx } from '../context.ts';

export const recreate: Step<RestoreCtx, RestorePlanCtx> = {
  name: 'recreate',
  title: 'recreate: the backed-up collections, exactly',
  needs: ['connect'],
  // What is dropped is the pre-migration data (which is the backup) plus the migration's writes
  // (which migrate writes again); each collection is re-created from the backup whole, so running
  // restore again finishes an interrupted one. Whatever the target cannot store was refused in connect.
  undoText: 'none: the dropped collections are the backup plus the migration\'s writes (migrate writes them again); run restore again to finish an interrupted one',

  async run(c, progress) {
    const target = c.target!;
    const onTarget = new Set((await target.existing(c.collections.map((x) => x.name))).keys());
    const total = recordsIn(c.collections);
    let written = 0;
    const writes = recreation(c, onTarget, restoreBatchSize(await target.maxBatchSize()));
    for (const col of c.collections) {
      for (const w of writes.filter((x) => x.collection === col.name)) {
        if (w.op === 'drop') await target.deleteCollection(col.name);
        else if (w.op === 'create') await target.ensureCollection(col);
        else if (w.op === 'upsert') {
          for await (const page of c.backup.read(col, w.batchSize, c.o.signal)) {
            await target.upsert(col.name, page, c.o.signal);
            written += page.length;
            progress(`${written}/${total} records`);
          }
        }
      }
      c.report.restored.push({ name: col.name, records: col.count });
    }
    return done(`${c.collections.length} collections, ${written} records`);
  },

  plan: (p) => ({ commands: [], notes: recreation(p, p.onTarget, p.batchSize).map((w) => describeWrite(w, p.target)) }),
};
