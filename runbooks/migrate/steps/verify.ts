/** 6. verify: counts per target collection, and a sample compared field by field with the staged records. */
import type { Step } from '../../../lib/engine/step.ts';
import { done, skipped } from '../../../lib/engine/runner.ts';
import { stagedFile, type MigrateCtx, type MigratePlanCtx } from '../context.ts';
import { compareRecords, sampleStaged } from '../records.ts';

export const verify: Step<MigrateCtx, MigratePlanCtx> = {
  name: 'verify',
  title: 'verify: counts and a sample compared with the source',
  undoText: 'none',

  async run(c) {
    const { o, cp } = c;
    if (o.dryRun) return skipped('--dry-run');
    const mismatches: string[] = [];
    let sampled = 0;
    for (const [name, t] of Object.entries(cp.targets)) {
      const actual = await c.target!.count(name);
      const entry = c.summary.targets.find((x) => x.name === name);
      if (entry) entry.actual = actual;
      const before = c.existedBefore.get(name);
      if (!before && actual !== t.expected) mismatches.push(`${name}: ${actual} records, expected ${t.expected}`);
      if (before && actual < t.expected) mismatches.push(`${name}: ${actual} records, expected at least ${t.expected}`);
      const sample = await sampleStaged(stagedFile(cp, name), t.expected, o.verifySample);
      for (let i = 0; i < sample.length; i += 100) {
        const want = sample.slice(i, i + 100);
        const got = new Map((await c.target!.get(name, want.map((r) => r.id))).map((r) => [r.id, r]));
        for (const w of want) {
          const problem = compareRecords(w, got.get(w.id));
          if (problem) mismatches.push(`${name}/${w.id}: ${problem}`);
        }
        sampled += want.length;
      }
    }
    c.summary.verify = { sampled, mismatches: mismatches.slice(0, 50) };
    cp.phases.verify = 'done';
    await c.store.save(cp);
    if (mismatches.length) throw new Error(`verify: ${mismatches.length} problems, first: ${mismatches.slice(0, 3).join('; ')}`);
    return done(`${Object.keys(cp.targets).length} collections, counts equal; ${sampled} records compared field by field`);
  },

  plan: (p) => ({ commands: [], notes: ['count every target collection against the staged records; compare a sample field by field and embedding by embedding'] }),
};
