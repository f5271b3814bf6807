/**
 * Reconciliation applied for real under a LocalHost: the journaled swap is killed at every mv
 * boundary (before the first, after each rename and each journal write, via an `mv` wrapper
 * first on PATH that SIGKILLs the launcher or the worker), then the run that owns the swap finishes it and any other run reverses
 * it. Afterwards NAME always holds the old or the new data, nothing is lost, and what may be
 * removed is removed only while it still holds the inspected id.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { UserError } from '../../lib/common/errors.ts';
import { DATA_ID_FILE, recordVerifiedScript, removeDataDirScript } from '../../lib/volume/data-id.ts';
import { reconcile } from '../../lib/volume/reconcile.ts';
import { journaledSwapScript, swapTrashPath, type SwapIds } from '../../lib/volume/swap-journal.ts';
import { inspectVolume, reconcileVolume, removeRemovable } from '../../lib/volume/volume-reconciler.ts';
import { clearMvFault, injectMvFault, mvWrapperDir, tempVolume, withMvWrapperOnPath, type MvFault, type TempVolume } from './local-volume.ts';

const RUN = 'run0001';
const L = 'live-before:run0001';
const N = 'archive:' + 'a'.repeat(64) + '@run0001';
const O = 'archive:' + 'c'.repeat(64) + '@run0000';
const IDS: SwapIds = { live: L, next: N, old: O };
/** mv calls of a swap: 1 journal intent, 2 old->trash, 3 journal, 4 live->old, 5 journal, 6 new->live, 7 journal done. */
const MV_CALLS = 7;

async function dataDir(dir: string, content: string, id?: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'data'), content);
  if (id) await fs.writeFile(path.join(dir, DATA_ID_FILE), `${id}\n`);
}

async function seed(v: TempVolume): Promise<void> {
  await dataDir(v.layout.live, 'L', L);
  await dataDir(v.layout.old, 'O', O);
  await dataDir(v.layout.next, 'N', N);
}

async function contents(v: TempVolume): Promise<Record<string, string | undefined>> {
  const read = (d: string) => fs.readFile(path.join(d, 'data'), 'utf8').catch(() => undefined);
  return { live: await read(v.layout.live), next: await read(v.layout.next), old: await read(v.layout.old), trash: await read(swapTrashPath(v.layout, RUN)) };
}

const S0 = { live: 'L', next: 'N', old: 'O', trash: undefined };
const S3 = { live: 'N', next: undefined, old: 'L', trash: 'O' };

describe('a swap killed at every mv, then reconciled', { concurrency: 4 }, () => {
  withMvWrapperOnPath();

  // Every boundary: before the first mv, after each mv (a kill before mv #k leaves the volume as a
  // kill after mv #k-1 does; one such case, at a rename, is kept).
  const points: [number, MvFault][] = [[1, 'kill-before'], [4, 'kill-before']];
  for (let at = 1; at <= MV_CALLS; at++) points.push([at, 'kill-after']);
  for (const [at, fault] of points) {
    it(`killed ${fault === 'kill-before' ? 'before' : 'after'} mv #${at}; the same run finishes, another run reverses`, async () => {
      const v = await tempVolume();
      const copy = await tempVolume();
      try {
        await seed(v);
        await injectMvFault(v, at, fault);
        // All three renames ran (the kill hit only the last journal write, or came after it).
        const renamed = at === MV_CALLS || (at === MV_CALLS - 1 && fault === 'kill-after');
        // Killed before the intent was written: no swap began.
        const notBegun = at === 1 && fault === 'kill-before';
        const swap = v.host.run(journaledSwapScript(v.layout, RUN, IDS));
        if (at === MV_CALLS && fault === 'kill-after') await swap; // the journal said done: the swap reports done
        else await assert.rejects(swap);
        await clearMvFault(v);
        // The same volume twice: one reconciled by the swap's own run, one by another run.
        await fs.cp(v.layout.volume, copy.layout.volume, { recursive: true, verbatimSymlinks: true });
        for (const [vol, asker] of [[v, RUN], [copy, 'run0002']] as const) {
          const res = await reconcileVolume(vol.host, vol.layout, { runId: asker });
          const data = await contents(vol);
          const where = `${asker === RUN ? 'same' : 'other'} run: ${res.after.reason}`;
          if (renamed || (asker === RUN && !notBegun)) {
            assert.equal(res.after.action, 'needs-verify', where);
            assert.deepEqual(data, S3, where);
          } else {
            assert.equal(res.after.action, 'clean', where);
            assert.deepEqual(data, S0, where);
            assert.deepEqual(res.after.removable, ['next'], where);
          }
          const complete = at === MV_CALLS && fault === 'kill-after';
          if (!notBegun && !complete) assert.ok(res.applied, `an interrupted swap is finished or reversed (${where})`);
          // Settled: a third run sees the same (nothing left to finish or reverse).
          assert.equal(reconcile(res.facts, { runId: 'run0003' }).action, res.after.action, where);
        }
      } finally {
        await v.dispose();
        await copy.dispose();
      }
    });
  }
});

describe('after reconciliation', () => {
  it('a verified swap leaves history: the trashed old and an emptied trash dir go, NAME.old stays', async () => {
    const v = await tempVolume();
    try {
      await seed(v);
      await v.host.run(journaledSwapScript(v.layout, RUN, IDS));
      await v.host.run(recordVerifiedScript(v.layout, N));
      const res = await reconcileVolume(v.host, v.layout, { runId: 'run0002' });
      assert.equal(res.after.action, 'clean');
      assert.deepEqual(res.after.removable, ['trash']);
      assert.deepEqual(await removeRemovable(v.host, v.layout, res.facts, res.after), [swapTrashPath(v.layout, RUN)]);
      assert.deepEqual(await contents(v), { ...S3, trash: undefined });
      await assert.rejects(fs.access(path.dirname(swapTrashPath(v.layout, RUN))));
    } finally {
      await v.dispose();
    }
  });

  it('a dir is removed only while it holds the id it was inspected with', async () => {
    const v = await tempVolume();
    try {
      await dataDir(v.layout.live, 'L', L);
      await dataDir(v.layout.next, 'N', N);
      const facts = await inspectVolume(v.host, v.layout);
      const r = reconcile(facts);
      assert.deepEqual(r.removable, ['next']);
      await fs.writeFile(path.join(v.layout.next, DATA_ID_FILE), `${O}\n`); // another run reassembled meanwhile
      const e = await removeRemovable(v.host, v.layout, facts, r).catch((x: unknown) => x);
      assert.ok(e instanceof UserError);
      assert.match(e.message, /changed since it was inspected/);
      assert.equal(await fs.readFile(path.join(v.layout.next, 'data'), 'utf8'), 'N');
      await v.host.run(removeDataDirScript(v.layout.next, O));
      await assert.rejects(fs.access(v.layout.next));
      await v.host.run(removeDataDirScript(v.layout.next, O)); // gone already: fine
    } finally {
      await v.dispose();
    }
  });

  it('an interrupted swap under another run\'s lock is left alone and names unlock', async () => {
    const v = await tempVolume();
    try {
      await seed(v);
      const tools = await tempVolume();
      const saved = process.env.PATH;
      process.env.PATH = `${await mvWrapperDir(path.join(tools.root, 'bin'))}:${saved}`;
      try {
        await injectMvFault(v, 4, 'kill-before');
        await assert.rejects(v.host.run(journaledSwapScript(v.layout, RUN, IDS)));
      } finally {
        process.env.PATH = saved;
        await tools.dispose();
      }
      await fs.mkdir(v.layout.lock);
      await fs.writeFile(path.join(v.layout.lock, 'owner.json'), `${JSON.stringify({ runId: RUN })}\n`);
      const before = await contents(v);
      const res = await reconcileVolume(v.host, v.layout, { runId: 'run0002' });
      assert.equal(res.after.action, 'unknown');
      assert.match(res.after.resolve ?? '', /^chroma-ferry unlock/);
      assert.deepEqual(await contents(v), before);
      assert.deepEqual(before, { live: 'L', next: 'N', old: undefined, trash: 'O' });
    } finally {
      await v.dispose();
    }
  });
});
