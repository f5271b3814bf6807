/** A failed gate (counts, sample, --min-valid) or a refusal mid-stream: this run's staging collections dropped, the target as before. */
import { writeName, type MigrateCtx } from './context.ts';

/** The staging collections of this run that exist, deleted (only those: the tool created them); the import is to be done again. */
export async function dropStaging(c: MigrateCtx): Promise<string[]> {
  const names = Object.keys(c.cp.targets).map((n) => writeName(c, n));
  const have = await c.target!.existing(names);
  for (const n of have.keys()) await c.target!.deleteCollection(n);
  c.summary.cutover = { staging: names, previous: [], dropped: [...have.keys()], journal: '' };
  // A --resume re-imports into a fresh staging collection.
  for (const t of Object.values(c.cp.targets)) Object.assign(t, { batchesDone: 0, doneAbove: [], recordsDone: 0 });
  delete c.cp.phases.import;
  await c.store.save(c.cp);
  await c.log.write({ event: 'staging_dropped', collections: [...have.keys()] });
  return [...have.keys()];
}
