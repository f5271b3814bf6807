/**
 * 3. backup: tar.gz of the live dir in .ferry/backups, checked on the remote before it gets its
 * name; retention after it. Runs alongside package..reassemble (it needs nothing local) and is
 * joined before the swap. Undo: none, the backup is kept.
 */
import { applyRetention, makeRemoteBackup } from '../../../lib/backups/operations.ts';
import { UserError } from '../../../lib/common/errors.ts';
import { backupName, utcStamp } from '../../../lib/remote/layout.ts';
import { backupScript, listBackupsScript } from '../../../lib/remote/scripts.ts';
import { done, skipped } from '../../../lib/engine/runner.ts';
import type { Step } from '../../../lib/engine/step.ts';
import { formatBytes } from '../../../lib/common/units.ts';
import { recordOf, type BackupTaken, type DeployCtx, type DeployFacts, type DeployPlanCtx } from '../context.ts';

type BackupResult = { backup: BackupTaken | null; snapshotId: string | null };

/** The archive's file name: NAME-<UTC stamp>.tar.gz, by the run's clock. */
function fileName(f: DeployFacts): string {
  return backupName(f.layout.name, utcStamp(f.now()));
}

export const backup: Step<DeployCtx, DeployPlanCtx, BackupResult> = {
  name: 'backup',
  title: 'backup: archive the live dir on the remote',
  undoText: 'none: the backup is kept',
  // The remote backup needs nothing local: it runs while the snapshot is packed and sent.
  background: true,

  async run(c, progress) {
    const { o, layout } = c;
    let snap = '';
    if (o.snapshot) {
      progress('volume snapshot');
      c.summary.snapshotId = await o.snapshot();
      snap = `snapshot ${c.summary.snapshotId}; `;
    }
    // With the packing started ahead, the first chunks go out first (their round trips are the
    // deploy's critical path; this tar + gzip is not: the swap is a whole upload away).
    if (c.uploadUnderway) await untilUnderway(c.uploadUnderway.promise, o.signal);
    const made = await makeRemoteBackup(o.host, layout, { signal: o.signal, name: fileName(c), onStart: (name) => progress(`tar czf ${name}`) });
    if (!made) return snap ? done(`${snap}no live dir yet (first deploy)`) : skipped('no live dir yet (first deploy)');
    const removed = await applyRetention(o.host, layout, made.name, { keepCount: Math.max(1, o.keepBackups) }, o.signal);
    const taken = { name: made.name, bytes: made.bytes, sha256: made.sha256, pruned: removed.map((r) => r.name) };
    c.summary.backup = taken;
    return done(`${snap}${made.name} (${formatBytes(taken.bytes)})${removed.length ? `, pruned ${removed.length}` : ''}`);
  },

  plan(p) {
    const keep = Math.max(1, p.o.keepBackups);
    return {
      commands: [
        p.remote(backupScript(p.layout, fileName(p)), 'sha256= and bytes= of the backup (or skipped=no-live-dir on a first deploy)'),
        p.remote(listBackupsScript(p.layout), `the backups, newest first; keep the newest ${keep}`),
      ],
      notes: [
        ...(p.o.snapshot ? ['fly --snapshot: also take a volume snapshot first: fly volumes snapshots create VOLUME_ID (fly volumes list -a APP names it)'] : []),
        `prune: remove all but the newest ${keep} backups listed (each with its .sha256 and .data-id) from ${p.layout.backups}, never the newest one whose .data-id is the id in ${p.layout.ferry}/verified-${p.layout.name}; chroma-ferry backups --target ${p.o.host.label} lists them`,
      ],
    };
  },

  result: {
    save: (c) => ({ backup: c.summary.backup ?? null, snapshotId: c.summary.snapshotId ?? null }),
    parse(raw) {
      const r = recordOf(raw, 'backup');
      const b = r.backup as Partial<BackupTaken> | null | undefined;
      const validBackup = b === null || b === undefined ||
        (typeof b.name === 'string' && typeof b.sha256 === 'string' && Number.isFinite(b.bytes) && Array.isArray(b.pruned));
      if (!validBackup || (r.snapshotId != null && typeof r.snapshotId !== 'string')) {
        throw new UserError('the recorded backup result is not valid; start again with --from backup');
      }
      return { backup: (b ?? null) as BackupTaken | null, snapshotId: (r.snapshotId as string | null | undefined) ?? null };
    },
    load(c, r) {
      if (r.backup) c.summary.backup = r.backup;
      if (r.snapshotId) c.summary.snapshotId = r.snapshotId;
    },
  },
};

/**
 * How long the backup waits at most for the upload to be under way: the first chunk on the remote
 * or the end of the packing settles the wait, any failed step and Ctrl-C at once; this bound only
 * keeps a very slow link or an unforeseen path from holding the backup back for ever.
 */
export const BACKUP_WAITS_MS = 30_000;

function untilUnderway(underway: Promise<void>, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const t = setTimeout(done, BACKUP_WAITS_MS);
    signal.addEventListener('abort', done, { once: true });
    void underway.then(done);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
