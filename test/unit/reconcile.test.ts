/**
 * Reconciliation, the pure decision: a hand-written table of the journal phases x swap states x
 * who asks, a table without a journal, and a sweep over EVERY combination of what NAME, NAME.new,
 * NAME.old and the trashed old hold (missing, each journal id, a foreign id, a dir without id, a
 * file) x journal (none, corrupt, each phase, with and without live/old ids) x the verified id x
 * who asks x the lock, checking the rules that must always hold.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { matchingStates, reconcile, swapStates, type ReconcileAction, type Reconciliation } from '../../lib/volume/reconcile.ts';
import { SWAP_PHASES, type SwapIds, type SwapJournal, type SwapPhase } from '../../lib/volume/swap-journal.ts';
import type { DataSlot, VolumeFacts } from '../../lib/volume/volume-facts.ts';

const L = 'live-before:r1';
const N = 'archive:' + 'a'.repeat(64) + '@r1';
const O = 'archive:' + 'b'.repeat(64) + '@r0';
const X = 'archive:' + 'f'.repeat(64) + '@rx';
const RUN = 'r1';

type Cell = 'missing' | 'L' | 'N' | 'O' | 'X' | 'noid' | 'file';
const CELLS: readonly Cell[] = ['missing', 'L', 'N', 'O', 'X', 'noid', 'file'];
const ID: Record<string, string> = { L, N, O, X };

function slot(c: Cell): DataSlot {
  if (c === 'missing') return { kind: 'missing' };
  if (c === 'file') return { kind: 'file' };
  if (c === 'noid') return { kind: 'dir' };
  return { kind: 'dir', id: ID[c] };
}

function journal(phase: SwapPhase, ids: SwapIds = { live: L, next: N, old: O }): SwapJournal {
  return { v: 1, runId: RUN, phase, ids, startedAt: '2026-01-01T00:00:00Z' };
}

/** Facts with the data of state k of the journal's swap (ids L, N, O). */
function atState(k: number, extra: Partial<VolumeFacts> = {}, j = journal('intent')): VolumeFacts {
  const st = swapStates(j)[k]!;
  const s = (id: string | undefined): DataSlot => (id ? { kind: 'dir', id } : { kind: 'missing' });
  return { live: s(st.live), next: s(st.next), old: s(st.old), trash: s(st.trash), worker: 'none', journal: j, ...extra };
}

const CODE: Record<string, ReconcileAction> = { C: 'clean', F: 'finish-swap', R: 'reverse-swap', V: 'needs-verify', U: 'unknown' };

describe('reconcile: journal phase x swap state x who asks (ids L, N, O; last verified L)', () => {
  // Columns: states S0 (nothing moved), S1 (old trashed), S2 (live moved to old), S3 (new live), then
  // a volume matching no state (NAME holds a foreign id).
  const table: Record<'other run' | 'same run', Record<SwapPhase, string>> = {
    'other run': { intent: 'RRRFU', 'old-moved': 'RRRFU', 'live-moved': 'RRRFU', done: 'RRRVU', reversing: 'RRRRU', reversed: 'CCUVV' },
    'same run': { intent: 'FFFFU', 'old-moved': 'FFFFU', 'live-moved': 'FFFFU', done: 'FFFVU', reversing: 'RRRRU', reversed: 'CCUVV' },
  };
  for (const [who, rows] of Object.entries(table)) {
    for (const phase of SWAP_PHASES) {
      it(`${who}, phase ${phase}: ${rows[phase]}`, () => {
        const got = [0, 1, 2, 3, 4].map((k) => {
          const j = journal(phase);
          const f = k < 4 ? atState(k, { verifiedId: L }, j) : atState(0, { verifiedId: L, live: { kind: 'dir', id: X } }, j);
          const r = reconcile(f, { runId: who === 'same run' ? RUN : 'r2', name: 'db' });
          return Object.entries(CODE).find(([, a]) => a === r.action)![0];
        });
        assert.equal(got.join(''), rows[phase]);
      });
    }
  }

  it('done and verified is history: clean, and the trashed old may go (never NAME.old)', () => {
    const r = reconcile(atState(3, { verifiedId: N }, journal('done')));
    assert.equal(r.action, 'clean');
    assert.deepEqual(r.removable, ['trash']);
  });

  it('reversed is history: clean, the rejected NAME.new may go', () => {
    assert.deepEqual(reconcile(atState(0, { verifiedId: L }, journal('reversed'))).removable, ['next']);
  });

  it('needs-verify names the command that resolves it; an interrupted swap of another run behind a held lock names unlock', () => {
    const v = reconcile(atState(3, { verifiedId: L }, journal('done')), { runId: 'r2' });
    assert.equal(v.resolve, 'chroma-ferry deploy --from restart');
    const locked = reconcile(atState(2, { lock: { runId: RUN } }, journal('live-moved')), { runId: 'r2' });
    assert.equal(locked.action, 'unknown');
    assert.match(locked.resolve!, /^chroma-ferry unlock/);
    assert.equal(reconcile(atState(2, { lock: { runId: RUN } }, journal('live-moved')), { runId: RUN }).action, 'finish-swap');
  });

  it('a worker still running, or a corrupt journal: unknown, nothing removable', () => {
    assert.equal(reconcile(atState(1, { worker: 'alive' })).action, 'unknown');
    const c = reconcile({ live: { kind: 'dir', id: L }, next: { kind: 'dir', id: N }, old: { kind: 'missing' }, journal: 'corrupt', worker: 'none' });
    assert.equal(c.action, 'unknown');
    assert.deepEqual(c.removable, []);
  });

  it('a first deploy (no live, no old): the states coincide and the swap is finished or reversed as asked', () => {
    const j = journal('intent', { next: N });
    const f: VolumeFacts = { live: { kind: 'missing' }, next: { kind: 'dir', id: N }, old: { kind: 'missing' }, trash: { kind: 'missing' }, journal: j, worker: 'none' };
    assert.deepEqual(matchingStates(f, j), [0, 1, 2]);
    assert.equal(reconcile(f, { runId: RUN }).action, 'finish-swap');
    assert.equal(reconcile(f, { runId: 'r2' }).action, 'reverse-swap');
  });
});

describe('reconcile without a journal', () => {
  const rows: [string, Partial<Record<'live' | 'next' | 'old', Cell>> & { verified?: string }, ReconcileAction, string[], RegExp?][] = [
    ['an empty volume', {}, 'clean', []],
    ['a first deploy\'s NAME.new, no NAME: kept (nothing removed while NAME is missing)', { next: 'N' }, 'clean', []],
    ['NAME missing, NAME.old there', { old: 'O' }, 'unknown', [], /^chroma-ferry rollback$/],
    ['NAME missing, nothing else, but data was verified once', { verified: L }, 'unknown', [], /rollback --backup/],
    ['NAME missing, NAME.new there, data was verified once', { next: 'N', verified: L }, 'unknown', [], /rollback --backup/],
    ['NAME live and verified, a stale NAME.new', { live: 'L', next: 'N', verified: L }, 'clean', ['next']],
    ['a NAME.new the tool did not make (no id) stays', { live: 'L', next: 'noid', verified: L }, 'clean', []],
    ['NAME.new holding the verified data stays', { live: 'L', next: 'N', verified: N }, 'needs-verify', []],
    ['NAME is a file', { live: 'file', old: 'O' }, 'unknown', [], /move the file/],
    ['NAME holds unverified data, NAME.old the verified', { live: 'N', old: 'L', verified: L }, 'needs-verify', [], /^chroma-ferry rollback$/],
    ['an old tool\'s volume (no ids at all)', { live: 'noid', old: 'noid' }, 'clean', []],
    ['nothing verified yet', { live: 'N', old: 'L', next: 'X' }, 'clean', ['next']],
  ];
  for (const [name, c, action, removable, resolve] of rows) {
    it(name, () => {
      const f: VolumeFacts = { live: slot(c.live ?? 'missing'), next: slot(c.next ?? 'missing'), old: slot(c.old ?? 'missing'), worker: 'none', verifiedId: c.verified };
      const r = reconcile(f, { name: 'db' });
      assert.equal(r.action, action, r.reason);
      assert.deepEqual(r.removable, removable);
      if (resolve) assert.match(r.resolve ?? '', resolve);
    });
  }
});

describe('reconcile: every combination keeps the rules', () => {
  it('NAME x NAME.new x NAME.old x trashed old x journal x verified x who asks (x a lock where it acts)', () => {
    const journals: (SwapJournal | 'corrupt' | undefined)[] = [undefined, 'corrupt'];
    for (const phase of SWAP_PHASES) {
      for (const ids of [{ live: L, next: N, old: O }, { live: L, next: N }, { next: N, old: O }, { next: N }]) journals.push(journal(phase, ids));
    }
    let checked = 0;
    const failures: string[] = [];
    const seen = new Map<string, number>();
    for (const live of CELLS) for (const next of CELLS) for (const old of CELLS) for (const trash of ['missing', 'O', 'X'] as Cell[]) {
      for (const j of journals) for (const verifiedId of [undefined, L, N, O]) for (const runId of [RUN, 'r2']) {
        const f: VolumeFacts = { live: slot(live), next: slot(next), old: slot(old), trash: j && j !== 'corrupt' ? slot(trash) : undefined, journal: j, verifiedId, worker: 'none' };
        const r = reconcile(f, { runId, name: 'db' });
        // The lock only matters where the decision acts: there, another run's lock must stop it.
        const locked = r.action === 'finish-swap' || r.action === 'reverse-swap' ? { ...f, lock: { runId: 'r3' } } : undefined;
        for (const [ff, rr] of locked ? [[f, r], [locked, reconcile(locked, { runId, name: 'db' })]] as const : [[f, r]] as const) {
          const broken = rulesBroken(ff, rr, runId) ?? (ff.lock && rr.action !== 'unknown' ? 'another run\'s lock stops a finish or reverse' : undefined);
          checked++;
          seen.set(rr.action, (seen.get(rr.action) ?? 0) + 1);
          if (broken && failures.length < 5) failures.push(`${broken}: ${JSON.stringify({ live, next, old, trash, j, verifiedId, runId, lock: ff.lock })} -> ${JSON.stringify(rr)}`);
        }
      }
    }
    assert.deepEqual(failures, []);
    assert.ok(checked > 200_000, `${checked} combinations`);
    assert.deepEqual([...seen.keys()].sort(), ['clean', 'finish-swap', 'needs-verify', 'reverse-swap', 'unknown']);
  });
});

/** The first rule a decision breaks, or undefined. */
function rulesBroken(f: VolumeFacts, r: Reconciliation, runId: string): string | undefined {
  const j = f.journal;
  if (!r.reason || r.reason.includes('\n')) return 'one reason line';
  if ((r.action === 'unknown' || r.action === 'needs-verify') && !r.resolve) return 'a refusal names what resolves it';
  if (r.removable.length && r.action !== 'clean') return 'removal only when clean';
  if (r.removable.length && f.live.kind !== 'dir' && f.live.kind !== 'symlink') return 'nothing removed while NAME is missing';
  for (const s of r.removable) {
    const d = s === 'next' ? f.next : f.trash;
    if (!d || d.kind !== 'dir' || !d.id) return 'only dirs the tool made (with an id) are removed';
    if (d.id === f.verifiedId) return 'the verified data is never removed';
  }
  if (f.live.kind === 'missing' && r.action === 'clean' && (f.old.kind !== 'missing' || f.verifiedId)) return 'a missing NAME with data elsewhere is never clean';
  if (r.action === 'finish-swap' || r.action === 'reverse-swap') {
    if (!j || j === 'corrupt' || j.phase === 'reversed') return 'finish/reverse only with an unfinished journal';
    if (r.journal !== j) return 'finish/reverse carry their journal';
    const states = matchingStates(f, j);
    if (!states.length) return 'finish/reverse only when the volume is at a step of the swap';
    if (f.lock && f.lock.runId !== runId) return 'never act under another run\'s lock';
    // Data conservation: every data id on the volume is still there after the renames.
    const target = swapStates(j)[r.action === 'finish-swap' ? 3 : 0]!;
    const before = [f.live, f.next, f.old, f.trash].map((s) => s?.id).filter(Boolean).sort();
    const after = Object.values(target).filter(Boolean).sort();
    if (JSON.stringify(before) !== JSON.stringify(after)) return 'the renames keep every data dir';
    if (j.phase === 'reversing' && r.action !== 'reverse-swap') return 'a reversal under way goes on';
    if (r.action === 'reverse-swap' && runId === j.runId && j.phase !== 'reversing') return 'the journal\'s own run finishes its swap';
  }
  if (j && j !== 'corrupt' && j.phase !== 'reversed' && !(j.phase === 'done' && f.verifiedId === j.ids.next) && !matchingStates(f, j).length && r.action !== 'unknown') {
    return 'an unfinished journal that matches no step is unknown';
  }
  if (f.worker === 'alive' && r.action !== 'unknown') return 'a running worker is waited for';
  return undefined;
}
