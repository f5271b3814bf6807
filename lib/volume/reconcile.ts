/**
 * Reconciliation: from what is really on the volume (VolumeFacts) to what to do about it. Pure.
 *
 * With an unfinished swap journal, the ids say where each of its data is. The swap is at one of
 * four states (S0 nothing moved .. S3 all moved); the journal's phase only says the direction. A
 * rollback's journal is the same transaction at its own places (the data it puts back, and
 * NAME.failed-STAMP for what it replaces; nothing to the trash, so S0 and S1 coincide).
 * - `finish-swap`: take it forward to S3 (the journal's own run continues; or only the journal
 *   lags behind the renames).
 * - `reverse-swap`: take it back to S0 (anyone else; or a reversal was under way).
 * - `needs-verify`: the new data is live and no verify passed for it.
 * - `unknown`: the volume matches no state (or a worker still runs, or another run holds the
 *   lock): refuse new deploys, naming the one command that resolves it.
 * - `clean`: nothing unfinished; `removable` lists the dirs that may go now. Never anything while
 *   NAME is missing, never the dir holding the last verified id, never a dir without a data id
 *   (not made by the tool), never NAME itself nor NAME.old (the rollback copy).
 */
import type { SwapJournal } from './swap-journal.ts';
import { swapSlotsOf, type DataSlot, type VolumeFacts } from './volume-facts.ts';

export type ReconcileAction = 'clean' | 'finish-swap' | 'reverse-swap' | 'needs-verify' | 'unknown';

/** A dir that may be removed: the stale NAME.new, or the journal run's trashed NAME.old. */
export type RemovableSlot = 'next' | 'trash';

export interface Reconciliation {
  action: ReconcileAction;
  /** One line: what is on the volume. */
  reason: string;
  /** For needs-verify and unknown: the one command (or step) that resolves it. */
  resolve?: string;
  /** Dirs that may be removed now (only ever with `clean`). */
  removable: RemovableSlot[];
  /** The unfinished journal that finish-swap / reverse-swap act on. */
  journal?: SwapJournal;
}

export interface ReconcileOptions {
  /** The run asking: the journal's own run finishes its swap, any other reverses it. */
  runId?: string;
  /** The db dir's name, for the lines (default NAME). */
  name?: string;
}


/** Where a swap's data is at each state: an id, or undefined for "nothing there". */
export function swapStates(j: SwapJournal): Record<'live' | 'next' | 'old' | 'trash', string | undefined>[] {
  const { live: L, next: N, old: O } = j.ids;
  return [
    { live: L, next: N, old: O, trash: undefined },
    { live: L, next: N, old: undefined, trash: O },
    { live: undefined, next: N, old: L, trash: O },
    { live: N, next: undefined, old: L, trash: O },
  ];
}

const holds = (slot: DataSlot, id: string | undefined) => (id === undefined ? slot.kind === 'missing' : slot.kind === 'dir' && slot.id === id);

/** Indexes of the states the facts are at exactly (several when ids are absent: then states coincide). */
export function matchingStates(f: VolumeFacts, j: SwapJournal): number[] {
  const out: number[] = [];
  const s = swapSlotsOf(f);
  swapStates(j).forEach((st, k) => {
    if (holds(s.live, st.live) && holds(s.next, st.next) && holds(s.old, st.old) && holds(s.trash, st.trash)) out.push(k);
  });
  return out;
}

/** "the swap of run R" or "the rollback swap of run R". */
function swapOf(j: SwapJournal): string {
  return `the ${j.rollback ? 'rollback swap' : 'swap'} of run ${j.runId}`;
}

export function reconcile(f: VolumeFacts, o: ReconcileOptions = {}): Reconciliation {
  const name = o.name ?? 'NAME';
  const seen = describe(f, name);
  if (f.worker === 'alive') {
    return { action: 'unknown', reason: `a swap worker still runs on the volume (${seen})`, resolve: `wait for it (its log: .ferry/swap-${name}.log), then run the same command again`, removable: [] };
  }
  const j = f.journal;
  if (j === 'corrupt') {
    return {
      action: 'unknown',
      reason: `the swap journal .ferry/swap-journal-${name}.json is not one chroma-ferry wrote (${seen})`,
      resolve: `check that ${name} holds the data to serve, then move .ferry/swap-journal-${name}.json out of the volume's .ferry dir`,
      removable: [],
    };
  }
  const active = j && j.phase !== 'reversed' && !(j.phase === 'done' && f.verifiedId === j.ids.next);
  if (j && active) {
    const states = matchingStates(f, j);
    if (!states.length) {
      return { action: 'unknown', reason: `the ${j.rollback ? 'rollback ' : ''}swap journal of run ${j.runId} (phase ${j.phase}) matches no step of its swap: ${seen}`, resolve: rollbackHint(f), removable: [] };
    }
    const k = Math.max(...states);
    if (k === 3 && j.phase === 'done' && j.rollback) {
      // A rollback that put data back and never checked it: a rollback restarts and checks that data.
      return {
        action: 'needs-verify',
        reason: `${name} holds the data rollback run ${j.runId} put back (${j.ids.next}), not checked yet`,
        resolve: 'chroma-ferry rollback',
        removable: [],
        journal: j,
      };
    }
    if (k === 3 && j.phase === 'done') {
      return {
        action: 'needs-verify',
        reason: `${name} holds the new data of run ${j.runId} (${j.ids.next}), not verified; or put the previous data back with chroma-ferry rollback`,
        resolve: 'chroma-ferry deploy --from restart',
        removable: [],
        journal: j,
      };
    }
    // A reversal under way goes on; all renames done but the journal behind: only the journal is left.
    const finish = j.phase !== 'reversing' && (k === 3 || o.runId === j.runId);
    const action = finish ? 'finish-swap' : 'reverse-swap';
    if (f.lock && f.lock.runId !== o.runId) {
      return {
        action: 'unknown',
        reason: `run ${f.lock.runId ?? '?'} holds the lock and ${swapOf(j)} stopped at step ${k} of 3 (phase ${j.phase}): ${seen}`,
        resolve: 'chroma-ferry unlock (when no run is active: it removes the lock, then finishes or reverses the swap)',
        removable: [],
      };
    }
    return { action, reason: `${swapOf(j)} stopped at step ${k} of 3 (phase ${j.phase}): ${seen}`, removable: [], journal: j };
  }
  // No unfinished swap: a journal left is history (reversed, or done and verified).
  if (f.live.kind === 'missing') {
    if (f.verifiedId === undefined && f.old.kind === 'missing') return { action: 'clean', reason: `no data deployed yet (${seen})`, removable: [] };
    return { action: 'unknown', reason: `${name} is missing: ${seen}`, resolve: rollbackHint(f), removable: [] };
  }
  if (f.live.kind === 'file') {
    return { action: 'unknown', reason: `${name} is a file, not a Chroma dir: ${seen}`, resolve: `move the file ${name} out of the volume`, removable: [] };
  }
  if (f.verifiedId !== undefined && f.live.id !== undefined && f.live.id !== f.verifiedId) {
    return {
      action: 'needs-verify',
      reason: `${name} holds ${f.live.id}, which no verify passed for (the last verified data is ${f.verifiedId}): ${seen}`,
      resolve: f.old.id === f.verifiedId ? 'chroma-ferry rollback' : 'chroma-ferry verify --health-url URL, then deploy or roll back',
      removable: [],
    };
  }
  const removable: RemovableSlot[] = [];
  const mayGo = (s: DataSlot | undefined) => s !== undefined && s.kind === 'dir' && s.id !== undefined && s.id !== f.verifiedId;
  if (mayGo(f.next)) removable.push('next');
  if (j && j.phase === 'done' && matchingStates(f, j).includes(3) && mayGo(f.trash) && f.trash!.id === j.ids.old) removable.push('trash');
  return { action: 'clean', reason: `no unfinished swap (${seen})`, removable };
}

/** The command that puts known-good data back as NAME. */
function rollbackHint(f: VolumeFacts): string {
  return f.old.kind === 'dir' ? 'chroma-ferry rollback' : 'chroma-ferry rollback --backup FILE (pick one with chroma-ferry backups)';
}

/** "NAME: dir archive:..@r1, NAME.new: missing, ..." (ids as read, already validated). */
function describe(f: VolumeFacts, name: string): string {
  const one = (label: string, s: DataSlot | undefined) => `${label} ${s ? `${s.kind}${s.kind !== 'missing' ? ` ${s.id ?? 'without id'}` : ''}` : 'missing'}`;
  const parts = [one(name, f.live), one(`${name}.new`, f.next), one(`${name}.old`, f.old)];
  const j = f.journal !== 'corrupt' ? f.journal : undefined;
  if (j?.rollback && f.rollbackSlots) {
    if (j.rollback.from === 'backup') parts.push(one(`staged backup of run ${j.runId}`, f.rollbackSlots.next));
    parts.push(one(`${name}.failed-${j.rollback.stamp}`, f.rollbackSlots.old));
  }
  if (f.trash && f.trash.kind !== 'missing') parts.push(one('trashed old', f.trash));
  if (f.verifiedId) parts.push(`verified ${f.verifiedId}`);
  return parts.join(', ');
}
