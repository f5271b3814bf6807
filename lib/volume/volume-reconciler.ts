/**
 * Reconciling a volume for real: inspect it (lib/volume/volume-facts.ts), decide
 * (lib/volume/reconcile.ts), apply a finish or a reverse of an interrupted swap with the swap's
 * own journaled worker (lib/volume/swap-journal.ts), then look again. Every command that works on
 * a volume starts here. Refusals of the remote scripts become their one line (UserError).
 */
import type { RemoteHost } from '../hosts/remote-host.ts';
import type { RemoteLayout } from '../remote/layout.ts';
import { runRefusing } from '../remote/refusals.ts';
import { removeDataDirScript } from './data-id.ts';
import { reconcile, type Reconciliation, type RemovableSlot } from './reconcile.ts';
import { resumeSwapScript } from './swap-journal.ts';
import { inspectVolumeScript, parseVolumeFacts, slotPath, type VolumeFacts } from './volume-facts.ts';

export interface ReconcilerOptions {
  /** The run asking (it finishes its own interrupted swap; anyone else reverses it). */
  runId?: string;
  signal?: AbortSignal;
  /** How long to wait for a running swap worker (inspect) or the resumed one (default 60 s). */
  waitSeconds?: number;
}

export interface ReconcileResult {
  /** What the volume needed before anything was done. */
  before: Reconciliation;
  /** The finish or reverse applied, if any. */
  applied?: 'finish-swap' | 'reverse-swap';
  /** What the volume needs now (clean, needs-verify or unknown). */
  after: Reconciliation;
  /** The facts `after` was decided from. */
  facts: VolumeFacts;
}

/** What is on the volume now. */
export async function inspectVolume(host: RemoteHost, l: RemoteLayout, o: ReconcilerOptions = {}): Promise<VolumeFacts> {
  const r = await runRefusing(host, inspectVolumeScript(l, o.waitSeconds ?? 60), { volume: l.volume }, { signal: o.signal });
  return parseVolumeFacts(r.stdout);
}

/** Run the finish or reverse a reconciliation asks for (the journal is written before each rename); nothing for the others. */
export async function applyReconciliation(host: RemoteHost, l: RemoteLayout, r: Reconciliation, o: ReconcilerOptions = {}): Promise<void> {
  if ((r.action !== 'finish-swap' && r.action !== 'reverse-swap') || !r.journal) return;
  const script = resumeSwapScript(l, r.journal, r.action === 'finish-swap' ? 'forward' : 'reverse', { waitSeconds: o.waitSeconds });
  await runRefusing(host, script, { volume: l.volume }, { signal: o.signal });
}

/** Inspect, decide, finish or reverse an interrupted swap, and decide again. */
export async function reconcileVolume(host: RemoteHost, l: RemoteLayout, o: ReconcilerOptions = {}): Promise<ReconcileResult> {
  const ro = { runId: o.runId, name: l.name };
  const first = await inspectVolume(host, l, o);
  const before = reconcile(first, ro);
  if (before.action !== 'finish-swap' && before.action !== 'reverse-swap') return { before, after: before, facts: first };
  await applyReconciliation(host, l, before, o);
  const facts = await inspectVolume(host, l, o);
  return { before, applied: before.action, after: reconcile(facts, ro), facts };
}

/**
 * Remove what a `clean` reconciliation lists as removable, each only if it still holds the id it
 * was inspected with. Returns the paths removed.
 */
export async function removeRemovable(host: RemoteHost, l: RemoteLayout, facts: VolumeFacts, r: Reconciliation, signal?: AbortSignal): Promise<string[]> {
  if (r.action !== 'clean') return [];
  const removed: string[] = [];
  for (const slot of r.removable) {
    const { dir, id } = removableDir(l, facts, slot);
    await runRefusing(host, removeDataDirScript(dir, id, slot === 'trash'), { volume: l.volume }, { signal });
    removed.push(dir);
  }
  return removed;
}

function removableDir(l: RemoteLayout, facts: VolumeFacts, slot: RemovableSlot): { dir: string; id: string } {
  const s = slot === 'next' ? facts.next : facts.trash;
  const j = facts.journal;
  if (!s?.id) throw new Error(`${slot} has no data id: not removable`);
  if (slot === 'trash' && (!j || j === 'corrupt')) throw new Error('a trashed dir without its journal is not removable');
  return { dir: slotPath(l, slot, slot === 'trash' && j && j !== 'corrupt' ? j.runId : undefined), id: s.id };
}
