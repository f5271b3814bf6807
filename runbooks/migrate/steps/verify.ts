/**
 * 6. verify: the gate on what was imported (the staging collections of a staged run): counts per
 * collection, and a sample compared field by field with the staged records. A failed gate drops
 * the staging collections, so the target is exactly as before.
 */
import type { Step } from '../../../lib/engine/step.ts';
import { done, skipped } from '../../../lib/engine/runner.ts';
import { restoredNote, sampleFile, stagedFile, writeName, type MigrateCtx, type MigratePlanCtx } from '../context.ts';
import { compareRecords, sampleStaged } from '../records.ts';
import { dropStaging } from '../staging-drop.ts';
import { readJsonl } from '../../../lib/migrate/jsonl-lines.ts';
import type { MigrationRecord } from '../../../lib/migrate/types.ts';

export const verify: Step<MigrateCtx, MigratePlanCtx> = {
  name: 'verify',
  title: 'verify: counts and a sample compared with the source (the gate before cutover)',
  undoText: 'none (a failed gate drops the staging collections)',

  async run(c) {
    const { o, cp } = c;
    if (o.dryRun) return skipped('--dry-run');
    if (cp.phases.verify) return restoredNote(c, 'verify');
    const mismatches: string[] = [];
    let sampled = 0;
    for (const [name, t] of Object.entries(cp.targets)) {
      const into = writeName(c, name);
      const actual = await c.target!.count(into);
      const entry = c.summary.targets.find((x) => x.name === name);
      if (entry) entry.actual = actual;
      const before = cp.staged ? undefined : c.existedBefore.get(name);
      if (!before && actual !== t.expected) mismatches.push(`${name}: ${actual} records, expected ${t.expected}`);
      if (before && actual < t.expected) mismatches.push(`${name}: ${actual} records, expected at least ${t.expected}`);
      // Overlapped run: the sample the stream kept (every k-th record); else every k-th staged record.
      const sample = cp.phases.transform ? await sampleStaged(stagedFile(cp, name), t.expected, o.verifySample) : await readSample(cp, name);
      for (let i = 0; i < sample.length; i += 100) {
        const want = sample.slice(i, i + 100);
        const got = new Map((await c.target!.get(into, want.map((r) => r.id))).map((r) => [r.id, r]));
        for (const w of want) {
          const problem = compareRecords(w, got.get(w.id));
          if (problem) mismatches.push(`${name}/${w.id}: ${problem}`);
        }
        sampled += want.length;
      }
    }
    c.summary.verify = { sampled, mismatches: mismatches.slice(0, 50) };
    if (mismatches.length) {
      const dropped = cp.staged ? await dropStaging(c) : [];
      throw new Error(`verify: ${mismatches.length} problems, first: ${mismatches.slice(0, 3).join('; ')}` +
        (cp.staged ? `; nothing cut over, the staging collections dropped (${dropped.length}): the target is as before` : ''));
    }
    cp.phases.verify = 'done';
    await c.store.save(cp);
    return done(`${Object.keys(cp.targets).length} ${cp.staged ? 'staging ' : ''}collections, counts equal; ${sampled} records compared field by field`);
  },

  plan: (p) => ({ commands: [], notes: ['count every staging collection against the staged records; compare a sample field by field and embedding by embedding; a failed gate drops the staging collections'] }),
};

async function readSample(cp: MigrateCtx['cp'], name: string): Promise<MigrationRecord[]> {
  const out: MigrationRecord[] = [];
  try {
    for await (const r of readJsonl<MigrationRecord>(sampleFile(cp, name))) out.push(r);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  return out;
}
