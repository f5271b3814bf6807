/**
 * 2. manifest: a consistent snapshot of the source and its per-collection counts, in this run's
 * own dir. Nothing on the remote, so nothing to undo.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { packDirsOf } from '../../../lib/archive/pack-ahead.ts';
import { snapshotSource } from '../../../lib/archive/snapshot.ts';
import { readSqliteManifestInWorker, type SqliteManifest } from '../../../lib/chroma/sqlite-manifest.ts';
import { manifestOfSnapshot } from '../../../lib/chroma/source-sqlite.ts';
import { writeJsonAtomic } from '../../../lib/engine/atomic-file.ts';
import { expectedCollectionsOf } from '../../../lib/volume/deployed-manifest.ts';
import { UserError } from '../../../lib/common/errors.ts';
import { done } from '../../../lib/engine/runner.ts';
import type { Step } from '../../../lib/engine/step.ts';
import { recordOf, type DeployCtx, type DeployPlanCtx } from '../context.ts';

type ManifestResult = { manifest: SqliteManifest };
type ManifestLocal = { snapshotDir: string | undefined };

export const manifest: Step<DeployCtx, DeployPlanCtx, ManifestResult, ManifestLocal> = {
  name: 'manifest',
  title: 'manifest: consistent snapshot and per-collection counts',
  undoText: 'nothing on the remote (local work files only)',

  async run(c, progress) {
    progress('copying a consistent snapshot of the source');
    const { snapshotDir } = packDirsOf(c.runDir);
    let snap;
    if (c.packAhead) {
      snap = await c.packAhead.snapshot; // taken while the preflight ran
    } else {
      await fs.rm(snapshotDir, { recursive: true, force: true }); // a kept one from an earlier run of this run dir
      snap = await snapshotSource(c.o.source, snapshotDir, { signal: c.o.signal });
    }
    c.snapshotDir = snap.dir;
    // The preflight read the source's file with its migrations: the snapshot holds that same file
    // unless the source changed since (then the snapshot is read).
    const read = manifestOfSnapshot(c.sourceSqlite, c.o.source, snap.dir);
    const m = read ?? await readSqliteManifestInWorker(snap.dir);
    if (m.pendingWrites > 0) {
      c.summary.warnings.push(`source has ${m.pendingWrites} queued writes not yet applied; counts are of applied records`);
    }
    useManifest(c, m);
    await writeJsonAtomic(path.join(c.runDir, 'manifest.json'), m);
    return done(`${m.collections.length} collections, ${m.totalRecords} records${read ? ' (counted in the preflight\'s read of the source, unchanged since)' : ''}`);
  },

  plan(p) {
    return {
      commands: [p.local('consistent snapshot of the source and its per-collection counts',
        [...p.cli, 'snapshot', '--source', p.o.source, '--out', p.snapshotDir, '--manifest', p.manifestFile],
        `${p.manifest.collections.length} collections, ${p.manifest.totalRecords} records`)],
      notes: [],
    };
  },

  result: {
    save: (c) => ({ manifest: c.manifest! }),
    parse(raw) {
      const m = recordOf(raw, 'manifest').manifest as Partial<SqliteManifest> | undefined;
      if (!m || !expectedCollectionsOf(m) || !Number.isSafeInteger(m.totalRecords)) {
        throw new UserError('the recorded manifest result (collections and counts) is not valid; start again with --from manifest');
      }
      return { manifest: m as SqliteManifest };
    },
    load: (c, r) => useManifest(c, r.manifest),
  },

  local: {
    save: (c) => ({ snapshotDir: c.snapshotDir }),
    workFiles: {
      key: 'snapshotDir' satisfies keyof ManifestLocal,
      what: (runId) => `the snapshot of run ${runId}`,
      redo: 'take it again with --from manifest',
      use: (c, dir) => { c.snapshotDir = dir; },
    },
  },
};

function useManifest(c: DeployCtx, m: SqliteManifest): void {
  c.manifest = m;
  c.summary.source.collections = m.collections.length;
  c.summary.source.records = m.totalRecords;
}
