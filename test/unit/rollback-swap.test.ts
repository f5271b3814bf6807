/**
 * The rollback's swap as a journaled transaction (issue 15, 1 and 2): NAME -> NAME.failed-STAMP,
 * the data put back (NAME.old, or a backup staged in .ferry/restore-RUN/NAME) -> NAME, by the
 * deploy's launcher and worker. The pure decision for a rollback journal (phase x state x who
 * asks, at the rollback's own places), the journal's checked fields, the inspection of its places,
 * and for real under a LocalHost: the swap killed at every mv then reconciled (its own run finishes
 * it, any other run reverses it), its undo by the journal, its launcher's worker killed between
 * the renames, and what a deploy and a rollback are told afterwards.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { commandHints } from '../../lib/cli/command-hint.ts';
import { UserError } from '../../lib/common/errors.ts';
import { failedDirPath, restoreStagingDir } from '../../lib/remote/rollback-scripts.ts';
import { DATA_ID_FILE, recordVerifiedScript } from '../../lib/volume/data-id.ts';
import { reconcileBeforeCommand, reverseSwap, rollbackSwapIn } from '../../lib/volume/deploy-swap.ts';
import { matchingStates, reconcile, swapStates } from '../../lib/volume/reconcile.ts';
import {
  parseSwapJournal, rollbackSwapScript, SWAP_PHASES, swapJournalFile, swapPlaces, type RollbackSwap, type SwapJournal, type SwapPhase,
} from '../../lib/volume/swap-journal.ts';
import { inspectVolumeScript, parseVolumeFacts, swapSlotsOf, type DataSlot, type VolumeFacts } from '../../lib/volume/volume-facts.ts';
import { inspectVolume, reconcileVolume } from '../../lib/volume/volume-reconciler.ts';
import { newRollbackCtx } from '../../runbooks/rollback/index.ts';
import { stage } from '../../runbooks/rollback/steps/stage.ts';
import { clearMvFault, fillUp, injectMvFault, mountTmpfs, tempVolume, unmount, withMvWrapperOnPath, type MvFault, type TempVolume } from './local-volume.ts';

const RUN = 'rb0001';
const STAMP = '20260304T050607Z';
/** The data live when the rollback starts (a deploy's, verified or not). */
const L = 'archive:' + 'a'.repeat(64) + '@dep1';
/** The data put back (NAME.old's, or the staged backup's). */
const P = 'archive:' + 'b'.repeat(64) + '@dep0';
const X = 'archive:' + 'f'.repeat(64) + '@other';
const FALLBACK = `old-before:${RUN}`;

function rbJournal(phase: SwapPhase, from: RollbackSwap['from'] = 'old', ids: SwapJournal['ids'] = { live: L, next: P }): SwapJournal {
  return { v: 1, runId: RUN, phase, ids, startedAt: '2026-03-04T05:06:07.000Z', rollback: { from, stamp: STAMP } };
}

const dir = (id: string | undefined): DataSlot => (id ? { kind: 'dir', id } : { kind: 'missing' });

/**
 * Facts at state k of a rollback journal's swap: NAME, and the rollback's places (the data put
 * back; NAME.failed-STAMP). From NAME.old, the data put back IS NAME.old.
 */
function atState(k: number, j: SwapJournal, extra: Partial<VolumeFacts> = {}): VolumeFacts {
  const st = swapStates(j)[k]!;
  const rollbackSlots = { next: dir(st.next), old: dir(st.old) };
  const old = j.rollback!.from === 'old' ? rollbackSlots.next : { kind: 'missing' as const };
  return { live: dir(st.live), next: { kind: 'missing' }, old, trash: { kind: 'missing' }, worker: 'none', journal: j, rollbackSlots, ...extra };
}

const CODE: Record<string, string> = { clean: 'C', 'finish-swap': 'F', 'reverse-swap': 'R', 'needs-verify': 'V', unknown: 'U' };

describe('reconcile a rollback journal: phase x state x who asks (NAME held L, the data put back P; last verified L)', () => {
  // Columns: states S0 = S1 (nothing moved: a rollback trashes nothing), S2 (NAME moved to
  // NAME.failed-STAMP, NAME missing), S3 (the data put back is NAME), then a volume matching no state.
  const table: Record<'other run' | 'same run', Record<SwapPhase, string>> = {
    'other run': { intent: 'RRRFU', 'old-moved': 'RRRFU', 'live-moved': 'RRRFU', done: 'RRRVU', reversing: 'RRRRU', reversed: 'CCUVV' },
    'same run': { intent: 'FFFFU', 'old-moved': 'FFFFU', 'live-moved': 'FFFFU', done: 'FFFVU', reversing: 'RRRRU', reversed: 'CCUVV' },
  };
  for (const from of ['old', 'backup'] as const) {
    for (const [who, rows] of Object.entries(table)) {
      for (const phase of SWAP_PHASES) {
        it(`from ${from}, ${who}, phase ${phase}: ${rows[phase]}`, () => {
          const got = [0, 1, 2, 3, 4].map((k) => {
            const j = rbJournal(phase, from);
            const f = k < 4 ? atState(k, j, { verifiedId: L }) : atState(0, j, { verifiedId: L, live: dir(X) });
            return CODE[reconcile(f, { runId: who === 'same run' ? RUN : 'r2', name: 'db' }).action];
          });
          assert.equal(got.join(''), rows[phase]);
        });
      }
    }
  }

  it('the states are matched at the rollback\'s places, not at NAME.new and NAME.old', () => {
    const j = rbJournal('live-moved', 'backup');
    // NAME missing, L in NAME.failed-STAMP, P still staged; NAME.new and NAME.old hold unrelated data.
    const f = atState(2, j, { next: dir(X), old: dir(X) });
    assert.deepEqual(matchingStates(f, j), [2]);
    assert.deepEqual(swapSlotsOf(f), { live: { kind: 'missing' }, next: dir(P), old: dir(L), trash: { kind: 'missing' } });
    // The same facts read as a deploy's journal match nothing.
    assert.deepEqual(matchingStates({ ...f, rollbackSlots: undefined }, { ...j, rollback: undefined }), []);
  });

  it('done and not checked: needs-verify, resolved by a rollback (which checks the data put back), never by deploy --from', () => {
    const r = reconcile(atState(3, rbJournal('done'), { verifiedId: L }), { runId: 'r2', name: 'db' });
    assert.equal(r.action, 'needs-verify');
    assert.equal(r.resolve, 'chroma-ferry rollback');
    assert.match(r.reason, /^db holds the data rollback run rb0001 put back \(archive:b+@dep0\), not checked yet$/);
    // Checked: history. A rollback moves nothing to the trash: nothing removable but a stale NAME.new.
    const checked = reconcile(atState(3, rbJournal('done'), { verifiedId: P, next: dir(X) }));
    assert.equal(checked.action, 'clean');
    assert.deepEqual(checked.removable, ['next']);
  });

  it('stopped half-way: the line names the rollback swap and what each of its places holds', () => {
    const r = reconcile(atState(2, rbJournal('live-moved')), { runId: 'r2', name: 'db' });
    assert.equal(r.action, 'reverse-swap');
    assert.match(r.reason, /^the rollback swap of run rb0001 stopped at step 2 of 3 \(phase live-moved\): db missing, .*db\.failed-20260304T050607Z dir archive:a+@dep1/);
  });
});

describe('the rollback journal: checked fields, places computed here', () => {
  const line = (j: unknown) => JSON.stringify(j);
  const good = rbJournal('intent', 'backup');

  it('a rollback journal is read back as written; anything else in its fields makes it corrupt', () => {
    assert.deepEqual(parseSwapJournal(line(good)), good);
    for (const rollback of [{ from: 'old', stamp: '../../etc' }, { from: 'old', stamp: `${STAMP}/x` }, { from: 'live', stamp: STAMP }, { stamp: STAMP }, 'old', null]) {
      assert.equal(parseSwapJournal(line({ ...good, rollback })), 'corrupt', JSON.stringify(rollback));
    }
    // A rollback moves nothing to the trash.
    assert.equal(parseSwapJournal(line({ ...good, ids: { live: L, next: P, old: X } })), 'corrupt');
  });

  it('its places: NAME, the data put back (NAME.old or .ferry/restore-RUN/NAME), NAME.failed-STAMP', async () => {
    const v = await tempVolume('db');
    try {
      const l = v.layout;
      assert.deepEqual(swapPlaces(l, rbJournal('intent', 'old')), { live: l.live, next: l.old, old: failedDirPath(l, STAMP), trash: path.posix.join(l.trashRoot, RUN, 'old') });
      assert.equal(swapPlaces(l, rbJournal('intent', 'backup')).next, path.posix.join(restoreStagingDir(l, RUN), 'db'));
      assert.deepEqual(swapPlaces(l, { runId: RUN }), { live: l.live, next: l.next, old: l.old, trash: path.posix.join(l.trashRoot, RUN, 'old') });
      assert.throws(() => rollbackSwapScript(l, RUN, { from: 'old', stamp: 'now; rm -rf /' }, FALLBACK), /not a UTC stamp/);
    } finally {
      await v.dispose();
    }
  });
});

async function dataDir(d: string, content: string, id?: string): Promise<void> {
  await fs.mkdir(d, { recursive: true });
  await fs.writeFile(path.join(d, 'data'), content);
  if (id) await fs.writeFile(path.join(d, DATA_ID_FILE), `${id}\n`);
}

/** What each place holds: NAME, the data put back (at its source), NAME.failed-STAMP. */
async function contents(v: TempVolume, from: RollbackSwap['from']): Promise<Record<string, string | undefined>> {
  const read = (d: string) => fs.readFile(path.join(d, 'data'), 'utf8').catch(() => undefined);
  const p = swapPlaces(v.layout, rbJournal('intent', from));
  return { live: await read(p.live), source: await read(p.next), failed: await read(p.old) };
}

/** A volume where a deploy put L live (verified) and P is what a rollback puts back. */
async function seed(v: TempVolume, from: RollbackSwap['from']): Promise<void> {
  await dataDir(v.layout.live, 'L', L);
  await dataDir(swapPlaces(v.layout, rbJournal('intent', from)).next, 'P', P);
  await v.host.run(recordVerifiedScript(v.layout, L));
}

const BEFORE = { live: 'L', source: 'P', failed: undefined };
const AFTER = { live: 'P', source: undefined, failed: 'L' };

/** mv calls of a rollback swap: 1 journal intent, 2 journal old-moved, 3 NAME -> failed, 4 journal, 5 source -> NAME, 6 journal done. */
const MV_CALLS = 6;

describe('a rollback swap killed at every mv, then reconciled', { concurrency: 4 }, () => {
  withMvWrapperOnPath();

  const points: [number, MvFault][] = [[1, 'kill-before'], [3, 'kill-before'], [5, 'kill-before']];
  for (let at = 1; at <= MV_CALLS; at++) points.push([at, 'kill-after']);
  // From a staged backup only the places differ: the two points between the renames suffice.
  for (const from of ['old', 'backup'] as const) {
    for (const [at, fault] of from === 'old' ? points : points.filter(([at, f]) => f === 'kill-after' && (at === 3 || at === 4))) {
      it(`from ${from}: killed ${fault === 'kill-before' ? 'before' : 'after'} mv #${at}; its own run finishes it, another run reverses it; NAME is there after either`, async () => {
        const v = await tempVolume();
        const copy = await tempVolume();
        try {
          await seed(v, from);
          await injectMvFault(v, at, fault);
          const renamed = at === MV_CALLS || (at === MV_CALLS - 1 && fault === 'kill-after');
          const notBegun = at === 1 && fault === 'kill-before';
          const swap = v.host.run(rollbackSwapScript(v.layout, RUN, { from, stamp: STAMP }, FALLBACK, { waitSeconds: 20 }));
          if (at === MV_CALLS && fault === 'kill-after') await swap;
          else await assert.rejects(swap);
          await clearMvFault(v);
          await fs.cp(v.layout.volume, copy.layout.volume, { recursive: true, verbatimSymlinks: true });
          for (const [vol, asker] of [[v, RUN], [copy, 'rb0002']] as const) {
            const res = await reconcileVolume(vol.host, vol.layout, { runId: asker });
            const where = `${asker === RUN ? 'same' : 'other'} run: ${res.after.reason}`;
            if (renamed || (asker === RUN && !notBegun)) {
              assert.equal(res.after.action, 'needs-verify', where);
              assert.equal(res.after.resolve, 'chroma-ferry rollback', where);
              assert.deepEqual(await contents(vol, from), AFTER, where);
            } else {
              assert.equal(res.after.action, 'clean', where);
              assert.deepEqual(await contents(vol, from), BEFORE, where);
            }
            if (!notBegun && !(at === MV_CALLS && fault === 'kill-after')) assert.ok(res.applied, `finished or reversed (${where})`);
            assert.equal(reconcile(res.facts, { runId: 'rb0003' }).action, res.after.action, `settled (${where})`);
          }
        } finally {
          await v.dispose();
          await copy.dispose();
        }
      });
    }
  }
});

describe('rollbackSwapIn and reverseSwap', () => {
  let v: TempVolume;
  withMvWrapperOnPath();
  beforeEach(async () => { v = await tempVolume(); });
  afterEach(async () => v.dispose());

  it('swaps (stamping the data put back when it has no id), inspect reads its places, and the undo by the journal puts everything back', async () => {
    await dataDir(v.layout.live, 'L', L);
    await dataDir(v.layout.old, 'P'); // NAME.old from before data ids
    let launched = false;
    const out = await rollbackSwapIn(v.host, v.layout, RUN, { from: 'old', stamp: STAMP }, FALLBACK, { onLaunch: () => { launched = true; } });
    assert.ok(launched);
    assert.equal(out.status, 'done');
    assert.deepEqual(out.ids, { live: L, next: FALLBACK });
    assert.deepEqual(await contents(v, 'old'), AFTER);
    const f = await inspectVolume(v.host, v.layout);
    assert.deepEqual(f.rollbackSlots, { next: { kind: 'missing' }, old: dir(L) });
    assert.deepEqual(f.live, dir(FALLBACK));
    const j = f.journal !== 'corrupt' ? f.journal : undefined;
    assert.deepEqual(j && { phase: j.phase, rollback: j.rollback, ids: j.ids }, { phase: 'done', rollback: { from: 'old', stamp: STAMP }, ids: { live: L, next: FALLBACK } });

    assert.deepEqual(await reverseSwap(v.host, v.layout, RUN), { renamed: true });
    assert.deepEqual(await contents(v, 'old'), BEFORE);
    assert.deepEqual(await reverseSwap(v.host, v.layout, RUN), { renamed: false }, 'again: nothing to do');
    assert.deepEqual((await fs.readdir(v.layout.ferry)).filter((n) => n.includes('.tmp')), []);
  });

  it('a first rollback onto a volume without NAME: the data put back becomes NAME, nothing is kept aside', async () => {
    await dataDir(restoreStagingDir(v.layout, RUN) + '/chroma_db', 'P', P);
    const out = await rollbackSwapIn(v.host, v.layout, RUN, { from: 'backup', stamp: STAMP }, `restored:${RUN}`);
    assert.equal(out.status, 'done');
    assert.deepEqual(out.ids, { next: P });
    assert.deepEqual(await contents(v, 'backup'), { live: 'P', source: undefined, failed: undefined });
  });

  it('the worker killed between the two renames (NAME missing): the rollback finishes its own swap', async () => {
    await seed(v, 'old');
    await injectMvFault(v, 4, 'kill-before'); // the journal write after NAME -> NAME.failed: the worker dies there
    const out = await rollbackSwapIn(v.host, v.layout, RUN, { from: 'old', stamp: STAMP }, FALLBACK);
    await clearMvFault(v);
    assert.equal(out.status, 'done');
    assert.match(out.note ?? '', /this run finished it after: the swap of run rb0001 stopped at phase old-moved/);
    assert.deepEqual(out.ids, { live: L, next: P });
    assert.deepEqual(await contents(v, 'old'), AFTER);
  });

  it('refused before the intent (NAME.failed-STAMP exists): nothing renamed, no journal', async () => {
    await seed(v, 'old');
    await dataDir(failedDirPath(v.layout, STAMP), 'X', X);
    await assert.rejects(rollbackSwapIn(v.host, v.layout, RUN, { from: 'old', stamp: STAMP }, FALLBACK), (e: unknown) => e instanceof UserError && /changed since it was inspected/.test(e.message));
    assert.deepEqual(await contents(v, 'old'), { ...BEFORE, failed: 'X' });
    await assert.rejects(fs.access(swapJournalFile(v.layout)));
  });
});

describe('after a rollback that put data back and never checked it', () => {
  let v: TempVolume;
  beforeEach(async () => { v = await tempVolume(); });
  afterEach(async () => v.dispose());
  const hints = commandHints(['deploy', '--source', 'db', '--target', 'local:/t', '--volume', '/vol', '--yes'], ['--yes']);

  it('a deploy is refused, naming the rollback that checks it; a rollback goes on; inspect sees its places', async () => {
    await seed(v, 'old');
    await v.host.run(rollbackSwapScript(v.layout, RUN, { from: 'old', stamp: STAMP }, FALLBACK));
    const e = await reconcileBeforeCommand(v.host, v.layout, { command: 'deploy', runId: 'dep2', hints }).catch((x: unknown) => x);
    assert.ok(e instanceof UserError);
    assert.equal(e.exitCode, 2);
    assert.match(e.message, /^the last rollback \(run rb0001\) put archive:b+@dep0 back into .*\/vol\/chroma_db and never checked it: finish it with: chroma-ferry rollback --target local:\/t --volume \/vol --yes$/);
    const ok = await reconcileBeforeCommand(v.host, v.layout, { command: 'rollback', runId: 'rb0002', hints });
    assert.equal(ok.result.after.action, 'needs-verify');
    const f = parseVolumeFacts((await v.host.run(inspectVolumeScript(v.layout))).stdout);
    assert.deepEqual(swapSlotsOf(f), { live: dir(P), next: { kind: 'missing' }, old: dir(L), trash: { kind: 'missing' } });
    assert.deepEqual(await contents(v, 'old'), AFTER);
  });
});

describe('the stage step\'s undo', () => {
  let v: TempVolume;
  beforeEach(async () => { v = await tempVolume(); });
  afterEach(async () => v.dispose());

  it('keeps the staged backup while this rollback\'s swap journal is unfinished (it names that dir); removes it once the swap is reversed', async () => {
    const ctx = newRollbackCtx({ host: v.host, volume: '/vol', dbDir: 'chroma_db', backup: 'x', healthTimeoutMs: 1000, output: 'json', signal: new AbortController().signal }, { runId: RUN });
    const staged = swapPlaces(v.layout, rbJournal('intent', 'backup')).next;
    await dataDir(staged, 'P', P);
    await dataDir(v.layout.live, 'L', L);
    await fs.mkdir(v.layout.ferry, { recursive: true });
    // Reversing stopped half-way: NAME is back, the data put back is staged again, the journal says reversing.
    await fs.writeFile(swapJournalFile(v.layout), `${JSON.stringify(rbJournal('reversing', 'backup'))}\n`);
    await stage.undo!(ctx);
    assert.equal((await contents(v, 'backup')).source, 'P', 'kept');
    assert.ok(ctx.summary.warnings.some((w) => /kept: the unfinished swap journal of this rollback needs it/.test(w)), ctx.summary.warnings.join('\n'));
    await fs.writeFile(swapJournalFile(v.layout), `${JSON.stringify(rbJournal('reversed', 'backup'))}\n`);
    await stage.undo!(ctx);
    await assert.rejects(fs.access(ctx.staging), 'removed');
  });
});

describe('reversing a swap on a full volume (a small tmpfs)', () => {
  it('says "volume full: N MiB free, needed M MiB" at once (not "could not be reversed after 3 tries"), renames nothing; with room it reverses', async (t) => {
    const v = await tempVolume();
    const skip = await mountTmpfs(v.layout.volume, 2048);
    if (skip && process.env.CI === 'true' && process.getuid?.() === 0) throw new Error(`cannot mount a tmpfs under CI=true as root: ${skip}`);
    if (skip) {
      process.stderr.write(`\n!!! SKIPPING the full-volume reversal test: ${skip}\n\n`);
      await v.dispose();
      return t.skip(skip);
    }
    try {
      await seed(v, 'old');
      assert.equal((await rollbackSwapIn(v.host, v.layout, RUN, { from: 'old', stamp: STAMP }, FALLBACK)).status, 'done');
      await fillUp(v.layout.volume);
      const e = await reverseSwap(v.host, v.layout, RUN).catch((x: unknown) => x);
      assert.ok(e instanceof UserError, String(e));
      assert.match(e.message, /^volume full: 0 MiB free, needed 1 MiB \(.*\/vol on local:.*\); free space there and run again$/);
      assert.deepEqual(await contents(v, 'old'), AFTER);
      await fs.rm(path.join(v.layout.volume, 'filler'));
      assert.deepEqual(await reverseSwap(v.host, v.layout, RUN), { renamed: true });
      assert.deepEqual(await contents(v, 'old'), BEFORE);
    } finally {
      unmount(v.layout.volume);
      await v.dispose();
    }
  });
});
