/** 4. verify: every re-created collection's count equals the backup's, a sample compared field by field; the removed ones are gone. */
import type { MigrationRecord } from '../../../lib/migrate/types.ts';
import type { Step } from '../../../lib/engine/step.ts';
import { done } from '../../../lib/engine/runner.ts';
import { compareRecords } from '../../migrate/records.ts';
import { createdByMigration, type RestoreCtx, type RestorePlanCtx } from '../context.ts';

export const verify: Step<RestoreCtx, RestorePlanCtx> = {
  name: 'verify',
  title: 'verify: counts and a sample equal the backup',
  needs: ['connect', 'recreate'],
  undoText: 'none: reads only',

  async run(c) {
    const { report } = c;
    for (const entry of report.restored) {
      entry.actual = await c.target!.count(entry.name);
      if (entry.actual !== entry.records) report.mismatches.push(`${entry.name}: ${entry.actual} records, the backup has ${entry.records}`);
      const col = c.collections.find((x) => x.name === entry.name)!;
      const every = Math.max(1, Math.floor(col.count / Math.max(1, c.o.sample)));
      let i = 0;
      const sample: MigrationRecord[] = [];
      for await (const page of c.backup.read(col, 500, c.o.signal)) for (const r of page) if (i++ % every === 0 && sample.length < c.o.sample) sample.push(r);
      for (let k = 0; k < sample.length; k += 100) {
        const want = sample.slice(k, k + 100);
        const got = new Map((await c.target!.get(entry.name, want.map((r) => r.id))).map((r) => [r.id, r]));
        for (const w of want) {
          const p = compareRecords(w, got.get(w.id));
          if (p) report.mismatches.push(`${entry.name}/${w.id}: ${p}`);
        }
        report.sampled += want.length;
      }
    }
    for (const name of report.removed) {
      if ((await c.target!.existing([name])).size) report.mismatches.push(`${name}: still on the target`);
    }
    if (report.mismatches.length) throw new Error(`restore verify: ${report.mismatches.slice(0, 3).join('; ')}`);
    return done(`${report.restored.length} collections, counts equal; ${report.sampled} records compared`);
  },

  plan: (p) => {
    const removed = createdByMigration(p).filter((n) => p.onTarget.has(n));
    return {
      commands: [],
      notes: [
        `count each of the ${p.collections.length} re-created collections against the backup; compare up to ${p.sample} records of each field by field`,
        ...(removed.length ? [`check ${removed.join(', ')} ${removed.length === 1 ? 'is' : 'are'} gone`] : []),
      ],
    };
  },
};
