/**
 * 7. cutover: after the gate passed, each staging collection becomes NAME (an existing NAME is
 * first renamed aside as the previous version), all of them or none. Journaled in the checkpoint
 * dir before the first rename (lib/migrate/cutover.ts): a failed rename is reversed by the run, and
 * `--resume` ends an interrupted (or reversed) cutover from what the target holds; then previous
 * versions beyond `--keep-previous` are dropped.
 */
import { CutoverJournalStore, cutOver, dropRetained, previousOf, type CutoverEntry } from '../../../lib/migrate/cutover.ts';
import { canStage, previousName, stagingName } from '../../../lib/migrate/staging.ts';
import type { Step } from '../../../lib/engine/step.ts';
import { done, skipped } from '../../../lib/engine/runner.ts';
import type { MigrateCtx, MigratePlanCtx } from '../context.ts';

export const cutoverStep: Step<MigrateCtx, MigratePlanCtx> = {
  name: 'cutover',
  title: 'cutover: the staging collections renamed to the live names, the previous versions set aside',
  undoText: 'chroma-ferry migrate --undo --checkpoint-dir D (renames back)',

  async run(c) {
    const { o, cp } = c;
    if (o.dryRun) return skipped('--dry-run');
    if (!cp.staged || !canStage(c.target)) return skipped('written in place (this target has no renames)');
    const store = new CutoverJournalStore(c.store.dir);
    const journal = await store.load();
    let entry = journal.entries.find((e) => e.runId === cp.runId);
    const names = Object.keys(cp.targets);
    const resumed = entry !== undefined;
    if (!entry) {
      const previous: (string | null)[] = [];
      for (const name of names) previous.push(await previousOf(c.target, name, previousName(name, cp.runId)));
      entry = {
        runId: cp.runId, target: cp.target, targetScope: o.targetScope, state: 'cutting', at: '',
        collections: names.map((name, i) => ({ name, staging: stagingName(name, cp.runId), previous: previous[i] ?? null })),
      } satisfies CutoverEntry;
      journal.entries.push(entry);
    }
    if (entry.state !== 'done') await cutOver(c.target, store, journal, entry);
    await c.log.write({ event: 'cutover', collections: entry.collections });
    const dropped = await dropRetained(c.target, store, journal, Math.max(0, o.keepPrevious ?? 1), cp.target);
    if (dropped.length) await c.log.write({ event: 'previous_dropped', collections: dropped });
    cp.phases.cutover = 'done';
    await c.store.save(cp);
    const previous = entry.collections.map((x) => x.previous).filter((n): n is string => n !== null);
    c.summary.cutover = { staging: entry.collections.map((x) => x.staging), previous, dropped, journal: store.file };
    return done(`${names.length} collections cut over${resumed ? ' (finishing the interrupted cutover)' : ''}` +
      (previous.length ? `; previous versions kept as ${previous.join(', ')}` : '') + (dropped.length ? `; dropped older previous versions ${dropped.join(', ')}` : ''));
  },

  plan: () => ({ commands: [], notes: ['journal the cutover, then rename each existing NAME to NAME__ferry_prev_<run id> and NAME__ferry_<run id> to NAME; keep --keep-previous runs of previous versions (undo: migrate --undo)'] }),
};
