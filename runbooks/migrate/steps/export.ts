/** 2. export: every source collection paged into the staging dir (a concurrent writer is caught: read again once, then refused). */
import fs from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import { UserError } from '../../../lib/common/errors.ts';
import { SourceChangedError } from '../../../lib/migrate/chroma-endpoint.ts';
import type { Step } from '../../../lib/engine/step.ts';
import { done as finished } from '../../../lib/engine/runner.ts';
import { exportFile, pageSizeFor, rateMeter, restoredNote, streams, type MigrateCtx, type MigratePlanCtx } from '../context.ts';
import { writeJsonl } from '../records.ts';

export const exportStep: Step<MigrateCtx, MigratePlanCtx> = {
  name: 'export',
  title: 'export: page every source collection into the staging dir',
  undoText: 'none: local staging files only',

  async run(c, progress) {
    const { o, cp } = c;
    if (cp.phases.export) return restoredNote(c, 'export');
    if (streams(c)) return finished('overlapped with transform and import (timed there): each source collection read page by page, one page ahead, as the import takes them');
    const dir = path.join(cp.stagingDir, 'export');
    await fs.mkdir(dir, { recursive: true });
    const total = c.collections.reduce((n, s) => n + s.count, 0);
    let done = 0;
    const rate = rateMeter();
    const limit = pLimit(Math.max(1, o.workers));
    await Promise.all(c.collections.map((col) => limit(async () => {
      const file = exportFile(cp, col.name);
      for (let attempt = 1; ; attempt++) {
        try {
          const n = await writeJsonl(file, c.source!.read(col, pageSizeFor(c, col), o.signal), (k) => {
            done += k;
            progress(`${done}/${total} records, ${rate(done)}`);
          });
          cp.exported[col.name] = n;
          break;
        } catch (e) {
          done -= (e as { partialCount?: number }).partialCount ?? 0;
          if (!(e instanceof SourceChangedError)) throw e;
          await c.log.write({ event: 'source_changed', collection: col.name, attempt, message: e.message });
          if (attempt >= 2) {
            throw new UserError(`${e.message}; stop the writers (or export a copy: pass the persist directory or a snapshot) and run again`);
          }
          c.summary.warnings.push(`${col.name}: the source changed during the export; read again`);
          col.count = (await c.source!.listCollections([col.name]))[0]!.count;
        }
      }
    })));
    cp.phases.export = 'done';
    await c.store.save(cp);
    c.summary.collections = c.collections.map((s) => ({ source: s.name, exported: cp.exported[s.name] ?? 0 }));
    return finished(`${Object.values(cp.exported).reduce((a, b) => a + b, 0)} records from ${c.collections.length} collections`);
  },

  plan: (p) => ({ commands: [], notes: [`overlapped with transform and import (a staging target): page ${p.collections.length} collections (${p.records} records) straight into the transform (stage by stage into ${p.checkpointDir}/<run>/export/*.jsonl for --dry-run and a .jsonl target); a count change during the export is re-read once, then refused`] }),
};
