/** 1. preflight: target, tools, lock, something to roll back to. Undo: release the lock. */
import path from 'node:path';
import { findBackup } from '../../../lib/backup-catalog.ts';
import { UserError } from '../../../lib/errors.ts';
import { listBackupsScript, lockScript, parseKv, probeScript, unlockScript } from '../../../lib/remote-scripts.ts';
import { rollbackProbeScript } from '../../../lib/rollback-scripts.ts';
import { done } from '../../../lib/runbook-runner.ts';
import { armUndo, type Step } from '../../../lib/runbook-step.ts';
import { checkVolume, volumeStateScript } from '../../../lib/volume-check.ts';
import { describeLockHolder, tryVolumeLock, unlockHint } from '../../../lib/volume-lock.ts';
import { rollbackSource, type RollbackCtx, type RollbackFacts, type RollbackPlanCtx } from '../context.ts';

const scripts = {
  probe: (f: RollbackFacts) => probeScript(f.layout),
  look: (f: RollbackFacts) => rollbackProbeScript(f.layout),
  lock: (f: RollbackFacts) => lockScript(f.layout, f.lockOwner),
  unlock: (f: RollbackFacts) => unlockScript(f.layout, f.runId),
};

export const preflight: Step<RollbackCtx, RollbackPlanCtx> = {
  name: 'preflight',
  title: 'preflight: target, lock, something to roll back to',
  undoText: 'release the lock (unlock script with this run id)',
  undoName: 'lock',

  async run(c) {
    const { o, layout } = c;
    await checkVolume(o.host, layout, o.signal);
    const there = parseKv((await o.host.run(scripts.look(c), { signal: o.signal })).stdout);
    if (o.backup === undefined) {
      if (there.get('old') !== 'yes') {
        throw new UserError(`nothing to roll back to: ${layout.old} does not exist; list backups with chroma-ferry backups and pass --backup NAME`);
      }
    } else {
      const chosen = await findBackup(o.host, layout, o.backup, o.signal);
      c.backupName = chosen.name;
      c.summary.restoredFrom = path.posix.join(layout.backups, chosen.name);
    }
    c.source = rollbackSource(c);
    c.summary.restoredFrom ??= c.source;
    const lock = await tryVolumeLock(o.host, layout, c.runId, 'rollback', o.signal, c.lockOwner);
    if (!lock.acquired) {
      throw new UserError(`another run holds the deploy lock on ${layout.volume}${describeLockHolder(lock.holder)}; if none is running, clear it with: ${unlockHint(o.host, o.volume)}`);
    }
    armUndo(c.stack, preflight, c);
    return done(`from ${c.summary.restoredFrom}; live dir ${there.get('live') === 'yes' ? 'present' : 'missing'}`);
  },

  async undo(c) {
    await c.o.host.run(scripts.unlock(c));
  },

  plan(p) {
    return {
      commands: [
        p.remote(scripts.probe(p), 'missing= is empty, volume=dir'),
        p.remote(scripts.look(p), p.backupName ? undefined : 'old=yes (otherwise there is nothing to roll back to: use --backup NAME)'),
        // findBackup: the volume looked at, then the backups listed.
        ...(p.backupName ? [
          p.remote(volumeStateScript(p.layout)),
          p.remote(listBackupsScript(p.layout), `${p.backupName} is listed (otherwise there is no such backup: stop here)`),
        ] : []),
        p.remote(scripts.lock(p), 'lock=acquired (otherwise another run holds the lock: stop here)'),
      ],
      notes: [],
    };
  },
};
