/** 1. connect: the old and the new database opened read-only (a persist dir through a copy); the migration's transform loaded. */
import { openSource } from '../../../lib/migrate/endpoints.ts';
import { loadTransform, withRenames } from '../../../lib/migrate/transform.ts';
import type { Step } from '../../../lib/engine/step.ts';
import { done } from '../../../lib/engine/runner.ts';
import { relabel, type ValidateCtx, type ValidatePlanCtx } from '../context.ts';

export const connect: Step<ValidateCtx, ValidatePlanCtx> = {
  name: 'connect',
  title: 'connect: old and new database (read-only), transform',
  undoText: 'none: reads only',

  async run(c) {
    c.old = await openSource(c.o.oldUrl, { signal: c.o.signal, scope: c.o.oldScope }).catch((e) => { throw relabel(e, '--source-url', '--old-db-url'); });
    c.neu = await openSource(c.o.newUrl, { signal: c.o.signal, side: 'target', scope: c.o.newScope }).catch((e) => { throw relabel(e, '--source-url', '--new-db-url'); });
    const t = c.m.transform;
    c.transform = withRenames(await loadTransform(t.spec, { prefix: t.prefix }), t.renames);
    c.collections = await c.old.listCollections();
    return done(`${c.collections.length} old collections (${c.collections.reduce((n, x) => n + x.count, 0)} records)`);
  },

  plan: (p) => ({
    commands: [],
    notes: [`open ${p.old} and ${p.new} read-only (a persist dir is read from a copy); load the transform ${p.transform}`],
  }),
};
