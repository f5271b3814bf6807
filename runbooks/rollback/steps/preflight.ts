/** 1. preflight: target, tools, lock, something to roll back to. Undo: release the lock. */
import path from 'node:path';
import { findBackup } from '../../../lib/backups/catalog.ts';
import { UserError } from '../../../lib/common/errors.ts';
import { listBackupsScript, lockScript, parseKv, probeScript, unlockScript } from '../../../lib/remote/scripts.ts';
import { rollbackProbeScript } from '../../../lib/remote/rollback-scripts.ts';
import { done } from '../../../lib/engine/runner.ts';
import { armUndo, type Step } from '../../../lib/engine/step.ts';
import { checkVolume, volumeStateScript } from '../../../lib/volume/check.ts';
import { describeLockHolder, tryVolumeLock } from '../../../lib/volume/lock.ts';
import { commandInspectScript, reconcileBeforeCommand } from '../../../lib/volume/deploy-swap.ts';
import type { Reconciliation } from '../../../lib/volume/reconcile.ts';
import type { VolumeFacts } from '../../../lib/volume/volume-facts.ts';
import { rollbackSource, type RollbackCtx, type RollbackFacts, type RollbackPlanCtx } from '../context.ts';

const scripts = {
  probe: (f: RollbackFacts) => probeScript(f.layout),
  look: (f: RollbackFacts) => rollbackProbeScript(f.layout),
  lock: (f: RollbackFacts) => lockScript(f.layout, f.lockOwner),
  unlock: (f: RollbackFacts) => unlockScript(f.layout, f.runId),
  /** The look at the volume reconciliation starts with. */
  inspect: (f: RollbackFacts) => commandInspectScript(f.layout),
};

/**
 * The recorded deploy's run id when it did not finish and its swap was reversed on the volume (by
 * its undo, or by reconciliation) so that NAME holds what was live before it: a rollback then
 * restarts and checks that data instead of going one version further back.
 */
async function undoneDeploy(c: RollbackCtx, f: VolumeFacts): Promise<string | undefined> {
  const deploy = await c.deployState.load(c.o.signal).catch(() => null);
  const j = f.journal === 'corrupt' ? undefined : f.journal;
  if (!deploy || deploy.finished || !j || j.runId !== deploy.runId || j.phase !== 'reversed') return undefined;
  return j.ids.live !== undefined && f.live.kind === 'dir' && f.live.id === j.ids.live ? deploy.runId : undefined;
}

/**
 * The run id of a rollback whose swap completed (by itself, or finished by reconciliation) but
 * whose data was never checked (its CLI died after the renames): NAME holds what it put back, so
 * this rollback restarts and checks that data instead of going one version further back.
 */
function uncheckedRollback(f: VolumeFacts): string | undefined {
  const j = f.journal === 'corrupt' ? undefined : f.journal;
  if (!j?.rollback || j.phase !== 'done' || f.verifiedId === j.ids.next) return undefined;
  return f.live.kind === 'dir' && f.live.id === j.ids.next ? j.runId : undefined;
}

/**
 * Only for a volume without any swap journal (last swapped by a chroma-ferry that did not journal
 * its swaps; every swap, a rollback's too, is journaled now and its journal stays): the data id
 * NAME holds when an earlier rollback stopped after its swap (killed before its restart or
 * verify), told from the dirs alone: NAME holds data no verify passed for and NAME.old is gone
 * (that rollback moved it to NAME). Rolling back again finishes that rollback: restart and check
 * what is live, never put the replaced (newer) data back. With a journal, uncheckedRollback is the
 * one rule.
 */
function unjournaledRollback(f: VolumeFacts, after: Reconciliation): string | undefined {
  if (f.journal !== undefined) return undefined;
  if (after.action !== 'needs-verify' || f.old.kind !== 'missing' || f.live.kind !== 'dir' || !f.live.id) return undefined;
  return f.live.id;
}

export const preflight: Step<RollbackCtx, RollbackPlanCtx> = {
  name: 'preflight',
  title: 'preflight: target, lock, something to roll back to',
  undoText: 'release the lock (unlock script with this run id)',
  undoName: 'lock',

  async run(c) {
    const { o, layout } = c;
    await checkVolume(o.host, layout, o.signal);
    const there = parseKv((await o.host.run(scripts.look(c), { signal: o.signal })).stdout);
    if (o.backup !== undefined) {
      const chosen = await findBackup(o.host, layout, o.backup, o.signal);
      c.backupName = chosen.name;
      c.summary.restoredFrom = path.posix.join(layout.backups, chosen.name);
    }
    const lock = await tryVolumeLock(o.host, layout, c.runId, 'rollback', o.signal, c.lockOwner);
    if (!lock.acquired) {
      throw new UserError(`another run holds the deploy lock on ${layout.volume}${describeLockHolder(lock.holder)}; if none is running, clear it with: ${c.hints.unlock()}`);
    }
    armUndo(c.stack, preflight, c);
    // The volume first: an interrupted swap finished or reversed; then what is there decides.
    const rec = await reconcileBeforeCommand(o.host, layout, { command: 'rollback', runId: c.runId, hints: c.hints, signal: o.signal });
    c.summary.warnings.push(...rec.warnings);
    const undone = o.backup === undefined ? await undoneDeploy(c, rec.result.facts) : undefined;
    if (undone) {
      c.mode = 'live';
      c.source = layout.live;
      c.summary.restoredFrom = layout.live;
      return done(`${layout.live} already holds the data live before deploy run ${undone} (its swap was undone): restart and check it`);
    }
    // A rollback that put data back and never checked it: its journal says so (on a volume without
    // any journal, from an older chroma-ferry: NAME holds unverified data and NAME.old is gone).
    // This rollback finishes it (restart and check).
    const unchecked = o.backup === undefined ? uncheckedRollback(rec.result.facts) : undefined;
    const unfinished = o.backup === undefined ? unjournaledRollback(rec.result.facts, rec.result.after) : undefined;
    if (unchecked || unfinished) {
      c.mode = 'live';
      c.finishesRollback = true;
      c.source = layout.live;
      c.summary.restoredFrom = layout.live;
      return done(unchecked
        ? `${layout.live} already holds the data rollback run ${unchecked} put back (never checked): restart and check it`
        : `${layout.live} holds ${unfinished}, put live by a rollback that stopped before checking it (a volume without a swap journal: an older chroma-ferry's): restart and check it`);
    }
    if (o.backup === undefined && there.get('old') !== 'yes' && rec.result.facts.old.kind !== 'dir') {
      throw new UserError(`nothing to roll back to: ${layout.old} does not exist; list backups with chroma-ferry backups and pass --backup NAME`);
    }
    c.mode = o.backup === undefined ? 'old' : 'backup';
    c.source = rollbackSource(c);
    c.summary.restoredFrom ??= c.source;
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
        p.remote(scripts.inspect(p), 'no journal= line, or one with "phase":"done" or "reversed" (otherwise stop: chroma-ferry unlock finishes or reverses an interrupted swap)'),
      ],
      notes: [],
    };
  },
};
