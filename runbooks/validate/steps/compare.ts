/** 3. compare: per target collection, the expected records against the new database's, and the exact top-k of the same query vectors over both (all eight checks). */
import type { MigrationRecord } from '../../../lib/migrate/types.ts';
import { readJsonl } from '../../../lib/migrate/jsonl-lines.ts';
import { CHECK_NAMES } from '../../../lib/gate/checks.ts';
import type { Step } from '../../../lib/engine/step.ts';
import { done } from '../../../lib/engine/runner.ts';
import { stagedFile, type ValidateCtx, type ValidatePlanCtx } from '../context.ts';

export const compare: Step<ValidateCtx, ValidatePlanCtx> = {
  name: 'compare',
  title: 'compare: every expected record with the new database',
  needs: ['connect', 'expected'],
  undoText: 'none: reads only',

  async run(c, progress) {
    const existing = await c.neu!.listCollections();
    for (const [name, t] of c.targets) {
      progress(name);
      // The new database is held one collection at a time.
      const actual = new Map<string, MigrationRecord>();
      const info = existing.find((x) => x.name === name);
      if (info) for await (const page of c.neu!.read(info, 500, c.o.signal)) for (const r of page) actual.set(r.id, r);
      else c.gate.collectionAbsent(name);
      const queries = c.queries.filter((q) => q.target === name);
      await c.gate.compareCollection(name, readJsonl<MigrationRecord>(stagedFile(c, name)), t.count, actual, c.transform!.schemaOf(name), { space: t.space, queries });
    }
    return done(`${c.targets.size} collections compared`);
  },

  plan: (p) => ({
    commands: [],
    notes: [
      `read from ${p.new} each collection the transform writes, one at a time, and compare it with its expected records: ${CHECK_NAMES.join(', ')}`,
      p.sample ? `embeddings of ${p.sample} records per collection compared` : 'embeddings of every record compared',
    ],
  }),
};
