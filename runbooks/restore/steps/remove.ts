/** 2. remove: the collections the migration created (listed as touched in the backup's header, absent from the backup). */
import type { Step } from '../../../lib/engine/step.ts';
import { done, skipped } from '../../../lib/engine/runner.ts';
import { createdByMigration, describeWrite, removals, type RestoreCtx, type RestorePlanCtx } from '../context.ts';

export const remove: Step<RestoreCtx, RestorePlanCtx> = {
  name: 'remove',
  title: 'remove: collections the migration created',
  needs: ['connect'],
  // Nothing to put back: these collections did not exist before the migration, which wrote them
  // (migrate writes them again from its source); an interrupted restore is finished by running it again.
  undoText: 'none: the migration created them (running migrate again writes them again); run restore again to finish an interrupted one',

  async run(c) {
    const onTarget = new Set((await c.target!.existing(createdByMigration(c))).keys());
    for (const w of removals(c, onTarget)) {
      await c.target!.deleteCollection(w.collection);
      c.report.removed.push(w.collection);
    }
    return c.report.removed.length ? done(`removed ${c.report.removed.join(', ')}`) : skipped('none to remove');
  },

  plan: (p) => {
    const writes = removals(p, p.onTarget);
    return { commands: [], notes: writes.length ? writes.map((w) => describeWrite(w, p.target)) : ['none to remove'] };
  },
};
