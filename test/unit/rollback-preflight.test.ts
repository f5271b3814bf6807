/**
 * The rollback preflight's rule for "an earlier rollback put data back and never checked it":
 * the swap journal says so (every rollback swap is journaled, and the journal stays); only a volume
 * without any journal (an older chroma-ferry's) is judged from the dirs alone. Real scripts on a
 * temp volume under a LocalHost.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { UserError } from '../../lib/common/errors.ts';
import { DATA_ID_FILE, recordVerifiedScript, verifiedFile } from '../../lib/volume/data-id.ts';
import { rollbackSwapScript, swapJournalFile, swapPlaces, type SwapJournal } from '../../lib/volume/swap-journal.ts';
import { newRollbackCtx } from '../../runbooks/rollback/index.ts';
import { preflight } from '../../runbooks/rollback/steps/preflight.ts';
import type { RollbackCtx } from '../../runbooks/rollback/context.ts';
import { tempVolume, type TempVolume } from './local-volume.ts';

const RUN = 'rb0001';
const STAMP = '20260304T050607Z';
const X = 'archive:' + 'c'.repeat(64) + '@dep0';
const Y = 'archive:' + 'd'.repeat(64) + '@dep1';
const P = 'archive:' + 'e'.repeat(64) + '@dep2';

/** The last verified data was `id` (written as the verify of an earlier deploy left it). */
async function verified(v: TempVolume, id: string): Promise<void> {
  await fs.mkdir(path.dirname(verifiedFile(v.layout)), { recursive: true });
  await fs.writeFile(verifiedFile(v.layout), `${id}\n`);
}

async function dataDir(d: string, id: string): Promise<void> {
  await fs.mkdir(d, { recursive: true });
  await fs.writeFile(path.join(d, 'data'), id);
  await fs.writeFile(path.join(d, DATA_ID_FILE), `${id}\n`);
}

describe('rollback preflight: a rollback that put data back and never checked it', () => {
  let v: TempVolume;
  let ctx: RollbackCtx;
  beforeEach(async () => {
    v = await tempVolume();
    ctx = newRollbackCtx({ host: v.host, volume: '/vol', dbDir: 'chroma_db', healthTimeoutMs: 1000, output: 'json', signal: new AbortController().signal }, { runId: 'rb0002' });
  });
  afterEach(async () => v.dispose());

  const run = async () => {
    const r = await preflight.run(ctx, () => {});
    return typeof r === 'string' ? r : (r as { note?: string }).note ?? '';
  };

  it('its journal says so: restart and check what it put back', async () => {
    await dataDir(v.layout.live, X);
    await v.host.run(recordVerifiedScript(v.layout, X));
    await dataDir(v.layout.old, P);
    await v.host.run(rollbackSwapScript(v.layout, RUN, { from: 'old', stamp: STAMP }, `old-before:${RUN}`));
    const note = await run();
    assert.match(note, /already holds the data rollback run rb0001 put back \(never checked\): restart and check it$/);
    assert.equal(ctx.mode, 'live');
    assert.equal(ctx.finishesRollback, true);
  });

  it('a volume without any swap journal (an older chroma-ferry\'s): unverified data live and NAME.old gone is finished the same way', async () => {
    await dataDir(v.layout.live, Y);
    await verified(v, X);
    await assert.rejects(fs.access(swapJournalFile(v.layout)));
    const note = await run();
    assert.match(note, /holds archive:d+@dep1, put live by a rollback that stopped before checking it \(a volume without a swap journal: an older chroma-ferry's\): restart and check it$/);
    assert.equal(ctx.mode, 'live');
    assert.equal(ctx.finishesRollback, true);
  });

  it('with a journal that does not say so (a rollback from a backup, reversed), unverified data live is not taken for a rollback\'s: nothing to roll back to', async () => {
    // The reversal put NAME (Y, never verified) back and the staged backup (P) back in its place.
    await dataDir(v.layout.live, Y);
    await verified(v, X);
    const j: SwapJournal = { v: 1, runId: RUN, phase: 'reversed', ids: { live: Y, next: P }, startedAt: '2026-03-04T05:06:07.000Z', rollback: { from: 'backup', stamp: STAMP } };
    await dataDir(swapPlaces(v.layout, j).next, P);
    await fs.mkdir(v.layout.ferry, { recursive: true });
    await fs.writeFile(swapJournalFile(v.layout), `${JSON.stringify(j)}\n`);
    await assert.rejects(run(), (e: unknown) => e instanceof UserError && /^nothing to roll back to: .*chroma_db\.old does not exist; list backups with chroma-ferry backups and pass --backup NAME$/.test(e.message));
    assert.notEqual(ctx.finishesRollback, true);
  });
});
