/**
 * 2. stage (backup mode): the archive checked (recorded sha256, gzip -t) and extracted into the
 * staging dir. Undo: remove it, unless this run's swap journal still needs it (a swap neither done
 * nor reversed: the next command finishes or reverses it from there).
 */
import { parseKv } from '../../../lib/remote/scripts.ts';
import { stageBackupScript } from '../../../lib/remote/rollback-scripts.ts';
import { done, skipped } from '../../../lib/engine/runner.ts';
import { armUndo, type Step } from '../../../lib/engine/step.ts';
import { remoteScript } from '../../../lib/remote/shell.ts';
import { runRefusing } from '../../../lib/remote/refusals.ts';
import { writeDataIdScript } from '../../../lib/volume/data-id.ts';
import { inspectVolume } from '../../../lib/volume/volume-reconciler.ts';
import { restoredIdOf, rollbackSource, type RollbackCtx, type RollbackFacts, type RollbackPlanCtx } from '../context.ts';

const scripts = {
  stage: (f: RollbackFacts, backupName: string) => stageBackupScript(f.layout, backupName, f.staging),
  removeStaging: (f: RollbackFacts) => remoteScript('remove the staging dir', 'rm -rf "$1"', [f.staging]),
  /** A backup holds the id its data had then, maybe still carried by another dir: a new one. */
  newId: (f: RollbackFacts) => writeDataIdScript(rollbackSource(f), restoredIdOf(f)),
};

export const stage: Step<RollbackCtx, RollbackPlanCtx> = {
  name: 'stage',
  title: 'stage: verify and extract the backup',
  undoText: 'remove the staging dir',

  async run(c) {
    const { o } = c;
    if (c.backupName === undefined) return skipped('rolling back to NAME.old');
    armUndo(c.stack, stage, c);
    const kv = parseKv((await o.host.run(scripts.stage(c, c.backupName), { signal: o.signal })).stdout);
    await runRefusing(o.host, scripts.newId(c), { volume: c.layout.volume }, { signal: o.signal });
    return done(`${kv.get('files')} files verified and extracted`);
  },

  async undo(c) {
    const j = (await inspectVolume(c.o.host, c.layout)).journal;
    if (j === 'corrupt' || (j?.runId === c.runId && j.phase !== 'done' && j.phase !== 'reversed')) {
      c.summary.warnings.push(`${c.staging} kept: the unfinished swap journal of this rollback needs it`);
      return;
    }
    await c.o.host.run(scripts.removeStaging(c));
  },

  plan(p) {
    return {
      commands: p.backupName ? [p.remote(scripts.stage(p, p.backupName), 'files= (the archive matched its recorded sha256 and gzip -t)'), p.remote(scripts.newId(p))] : [],
      notes: p.backupName ? [] : [`nothing to stage: rolling back to ${p.layout.old}`],
    };
  },
};

export const removeStagingScript = scripts.removeStaging;
