/** 1. connect: the source opened read-only, the target, its max batch size, the transform; the checkpoint dir is writable. */
import { UserError } from '../../../lib/common/errors.ts';
import { openSource, openTarget } from '../../../lib/migrate/endpoints.ts';
import { loadTransform, withRenames } from '../../../lib/migrate/transform.ts';
import type { Step } from '../../../lib/engine/step.ts';
import { done } from '../../../lib/engine/runner.ts';
import type { MigrateCtx, MigratePlanCtx } from '../context.ts';

export const connect: Step<MigrateCtx, MigratePlanCtx> = {
  name: 'connect',
  title: 'connect: source (read-only), target, batch size, checkpoint dir',
  undoText: 'none: nothing written yet',

  async run(c) {
    const { o } = c;
    c.source = await openSource(o.sourceUrl, { signal: o.signal, scope: o.sourceScope });
    const t = await openTarget(o.targetUrl, {
      resume: o.resume, dryRun: o.dryRun, scope: o.targetScope, createDatabase: o.createDatabase, qdrant: o.qdrant,
      onCreated: (what) => { c.summary.createdDatabase = what; },
    });
    c.target = t.endpoint;
    c.prepareWrite = t.prepareWrite;
    c.summary.createdDir = t.createdDir;
    c.transform = withRenames(await loadTransform(o.transform, { prefix: o.prefix }), o.renames ?? {});
    c.collections = await c.source.listCollections(o.filterCollections);
    if (c.collections.length === 0) throw new UserError(`${c.source.label} has no collections to migrate`);
    c.maxBatch = await c.target.maxBatchSize();
    c.summary.collections = c.collections.map((s) => ({ source: s.name, exported: c.cp.exported[s.name] ?? 0 }));
    return done(`${c.collections.length} collections (${c.collections.reduce((n, s) => n + s.count, 0)} records) on ${c.source.label}; target max batch ${c.maxBatch}`);
  },

  plan: (p) => ({ commands: [], notes: [`open ${p.source} read-only and ${p.target}; check ${p.checkpointDir} is writable`] }),
};
