/**
 * What the runbooks do on a volume, on top of the journaled swap (swap-journal.ts) and the
 * reconciliation (reconcile.ts, volume-reconciler.ts):
 *
 * - `reconcileBeforeCommand`: every command that changes a volume starts here. An interrupted swap
 *   is finished (by its own run) or reversed (by anyone else); what cannot be settled refuses,
 *   naming the one command that resolves it (built from the user's own command line).
 * - `swapIn`, `rollbackSwapIn`: the deploy's swap, and the rollback's (the same journaled
 *   transaction at its own places). Once the remote launcher was started, whatever happens to the
 *   connection, the volume says how it ended: a transport error reconnects (bounded retries with
 *   backoff) and reconciles; the run's own interrupted swap is finished.
 * - `undoSwap`, `reverseSwap`: a run's swap reversed by its journal (ids decide each rename, never
 *   a guess); the deploy's undo then keeps the rejected data as NAME.failed-<stamp>.
 * - `removeUnusedNext`, `cleanupVolume`: only what reconciliation allows is removed: never while
 *   NAME is missing, never the last verified data, never a dir the tool did not stamp.
 */
import path from 'node:path';
import pRetry from 'p-retry';
import type { CommandHints } from '../cli/command-hint.ts';
import { HostUnreachable, RemoteCommandError, UserError } from '../common/errors.ts';
import type { RemoteHost } from '../hosts/remote-host.ts';
import { utcStamp, type RemoteLayout } from '../remote/layout.ts';
import { refusalError, refusalOf, runRefusing } from '../remote/refusals.ts';
import { remoteScript, type RemoteScript } from '../remote/shell.ts';
import { DATA_ID_FILE, isDataId, recordVerifiedScript, verifiedFile } from './data-id.ts';
import { matchingStates, reconcile, type Reconciliation } from './reconcile.ts';
import {
  FIRST_LINE, FOUND_ID, journaledSwapScript, parseSwapIds, resumeSwapScript, rollbackSwapScript, swapJournalFile, swapTrashPath,
  type RollbackSwap, type SwapIds, type SwapJournal,
} from './swap-journal.ts';
import { inspectVolumeScript, swapSlotsOf } from './volume-facts.ts';
import { inspectVolume, reconcileVolume, type ReconcileResult } from './volume-reconciler.ts';
import type { DataSlot, VolumeFacts } from './volume-facts.ts';

/** A failure of the way to the remote (not of the command there): the command may or may not have run. */
export function isTransportError(e: unknown): boolean {
  if (e instanceof HostUnreachable) return true;
  // No status from the remote at all (ssh 255, fly ssh console ending before the script's marker).
  return e instanceof RemoteCommandError && refusalOf(e) === undefined && (e.exitCode === 255 || e.exitCode === -1);
}

export interface ReconnectOptions {
  signal?: AbortSignal;
  /** Told before each new attempt after a transport error. */
  onReconnect?: (line: string) => void;
  /** Attempts after the first (default 6: about 25 s of backoff, 0.5 s doubling up to 8 s). */
  retries?: number;
  /** The first wait before a new attempt, doubling after each (default 500 ms). */
  firstDelayMs?: number;
}

/** `fn`, tried again after a transport error (bounded, with backoff); any other error is final. */
export async function withReconnect<T>(fn: () => Promise<T>, o: ReconnectOptions = {}): Promise<T> {
  const retries = o.retries ?? reconnectRetries();
  return pRetry(() => fn(), {
    retries, factor: 2, minTimeout: o.firstDelayMs ?? 500, maxTimeout: 8000, randomize: false, signal: o.signal,
    shouldRetry: (e) => isTransportError(e),
    onFailedAttempt: (e) => {
      if (isTransportError(e) && e.retriesLeft > 0) o.onReconnect?.(`connection lost (${e.message}); reconnecting, ${e.retriesLeft} tries left`);
    },
  });
}

/** CHROMA_FERRY_RECONNECT_RETRIES (tests make an unreachable host fail fast); default 6. */
function reconnectRetries(): number {
  const n = Number(process.env.CHROMA_FERRY_RECONNECT_RETRIES);
  return Number.isInteger(n) && n >= 0 ? n : 6;
}

// ---------------------------------------------------------------------------------------------
// Before a command

export type VolumeCommand = 'deploy' | 'rollback' | 'backup';

export interface BeforeCommandOptions {
  command: VolumeCommand;
  /** The run asking: it finishes its own interrupted swap (a resumed deploy); anyone else's is reversed. */
  runId: string;
  /** The deploy run in the runbook state (resumable with `--from`). */
  recordedDeployRunId?: string;
  hints: CommandHints;
  signal?: AbortSignal;
}

export interface BeforeCommand {
  result: ReconcileResult;
  /** This run's own swap, complete on the volume and not verified yet (a resumed deploy goes on after it). */
  ownSwap?: SwapJournal;
  /** What reconciliation did, for the summary. */
  warnings: string[];
}

/**
 * Reconcile the volume before `command` (the caller holds the volume lock): finish or reverse an
 * interrupted swap, then refuse (UserError; exit 2, or 1 when reconciliation already renamed
 * something) what the volume does not allow, naming the command that resolves it.
 */
export async function reconcileBeforeCommand(host: RemoteHost, l: RemoteLayout, o: BeforeCommandOptions): Promise<BeforeCommand> {
  const result = await withReconnect(() => reconcileVolume(host, l, { runId: o.runId, signal: o.signal }), { signal: o.signal });
  const { before, after, facts, applied } = result;
  const warnings: string[] = [];
  if (applied) warnings.push(`${applied === 'finish-swap' ? 'finished' : 'reversed'} the interrupted swap of run ${before.journal?.runId ?? '?'} (${before.reason})`);
  const exit = applied ? 1 : 2;
  const journal = facts.journal === 'corrupt' ? undefined : facts.journal;
  if (after.action === 'clean') return { result, warnings };
  if (after.action === 'needs-verify') {
    if (o.command !== 'deploy') return { result, warnings };
    if (journal && journal.runId === o.runId && facts.live.id === journal.ids.next) return { result, ownSwap: journal, warnings };
    throw new UserError(unverifiedLine(l, after, facts, journal, o), exit);
  }
  if (o.command === 'rollback' && after.resolve?.startsWith('chroma-ferry rollback')) return { result, warnings };
  throw new UserError(`${after.reason}; no ${o.command} until that is resolved: ${resolveHint(after, o.hints)}`, exit);
}

/** A deploy refused because unverified data is live: finish that deploy, or put the previous data back. */
function unverifiedLine(l: RemoteLayout, r: Reconciliation, f: VolumeFacts, j: SwapJournal | undefined, o: BeforeCommandOptions): string {
  const back = f.old.kind === 'dir' ? o.hints.rollback() : o.hints.rollback(['--backup', 'latest']);
  if (j?.rollback && f.live.id === j.ids.next) {
    return `the last rollback (run ${j.runId}) put ${j.ids.next} back into ${l.live} and never checked it: finish it with: ${o.hints.rollback()}`;
  }
  if (j && f.live.id === j.ids.next) {
    const resume = j.runId === o.recordedDeployRunId ? `finish it with: ${o.hints.deployFrom('restart')}; or ` : '';
    return `the last deploy (run ${j.runId}) swapped new data into ${l.live} and never verified it: ${resume}put the previous data back with: ${back}`;
  }
  return `${r.reason}; put the last verified data back with: ${back}`;
}

/** The reconciliation's `resolve` as a command the user can copy (their own flags). */
function resolveHint(r: Reconciliation, hints: CommandHints): string {
  const resolve = r.resolve ?? 'see what the volume holds (chroma-ferry backups) and fix it by hand';
  if (resolve.startsWith('chroma-ferry rollback --backup')) return `${hints.rollback(['--backup', 'NAME'])} (NAME from chroma-ferry backups)`;
  if (resolve.startsWith('chroma-ferry rollback')) return hints.rollback();
  if (resolve.startsWith('chroma-ferry unlock')) return `${hints.unlock()}${resolve.slice('chroma-ferry unlock'.length)}`;
  if (resolve.startsWith('chroma-ferry deploy --from restart')) return hints.deployFrom('restart');
  return resolve;
}

// ---------------------------------------------------------------------------------------------
// The swap

export interface SwapOutcome {
  /** `done`: the new data is NAME; `not-swapped`: the data live before is NAME (never renamed, or reversed). */
  status: 'done' | 'not-swapped';
  ids: SwapIds;
  /** How it ended when the launcher could not say (a reconnect, a worker finished by reconciliation). */
  note?: string;
}

export interface SwapInOptions extends ReconnectOptions {
  /** Called right before the remote launcher starts (from then on the swap has started; its undo goes by the journal). */
  onLaunch?: () => void;
  /** The journal's start time (default now). */
  startedAt?: Date;
}

/**
 * The one script of the swap (what `--plan` prints too): the launcher finds the ids of NAME and
 * NAME.old itself (stamping ones without), checks NAME.new holds `nextId`, writes the intent and
 * starts the detached worker.
 */
export function swapInScript(l: RemoteLayout, runId: string, nextId: string, startedAt?: Date): RemoteScript {
  return journaledSwapScript(l, runId, { live: FOUND_ID, next: nextId, old: FOUND_ID }, { startedAt });
}

/**
 * Swap NAME.new (holding `nextId`) in as NAME, journaled, run by a detached remote worker. Never
 * cancelled half-way (no signal reaches the launcher). After the launch, every outcome is read
 * from the volume: a transport error or an interrupted worker reconnects, and this run's swap is
 * finished by reconciliation.
 */
export async function swapIn(host: RemoteHost, l: RemoteLayout, runId: string, nextId: string, o: SwapInOptions = {}): Promise<SwapOutcome> {
  return runJournaledSwap(host, l, swapInScript(l, runId, nextId, o.startedAt), runId, nextId, o);
}

/**
 * The rollback's swap, journaled like the deploy's (lib/volume/swap-journal.ts rollbackSwapScript):
 * NAME -> NAME.failed-STAMP, the data put back -> NAME. Its ids are found on the volume (the data
 * put back without one gets `nextFallbackId`); the outcome's `ids` are what the launcher (or the
 * journal) says. Never cancelled half-way; settled from the volume like a deploy's.
 */
export async function rollbackSwapIn(host: RemoteHost, l: RemoteLayout, runId: string, rb: RollbackSwap, nextFallbackId: string, o: SwapInOptions = {}): Promise<SwapOutcome> {
  return runJournaledSwap(host, l, rollbackSwapScript(l, runId, rb, nextFallbackId, { startedAt: o.startedAt }), runId, undefined, o);
}

/** Run a swap launcher; `nextId`: the new data's id when the caller knows it (else the launcher's or the journal's). */
async function runJournaledSwap(host: RemoteHost, l: RemoteLayout, script: RemoteScript, runId: string, nextId: string | undefined, o: SwapInOptions): Promise<SwapOutcome> {
  o.onLaunch?.();
  let cause: string;
  try {
    const r = await host.run(script);
    return { status: 'done', ids: parseSwapIds(r.stdout, nextId) };
  } catch (e) {
    const refusal = refusalOf(e);
    // Refused by its checks before the intent: nothing was renamed.
    if (refusal && ['not-a-dir', 'volume-changed', 'verified-in-the-way', 'volume-full'].includes(refusal.reason)) {
      throw refusalError(e, { host: host.label, volume: l.volume })!;
    }
    cause = refusal ? refusalError(e, { host: host.label, volume: l.volume })!.message : e instanceof Error ? e.message : String(e);
  }
  return settleSwap(host, l, runId, nextId, cause, o);
}

/** After a launcher that did not report `done`: reconnect, reconcile as this run, and read the outcome from the volume. */
async function settleSwap(host: RemoteHost, l: RemoteLayout, runId: string, nextId: string | undefined, cause: string, o: ReconnectOptions): Promise<SwapOutcome> {
  o.onReconnect?.(`the swap did not report its end (${cause}); asking the volume`);
  let res: ReconcileResult;
  try {
    res = await withReconnect(() => reconcileVolume(host, l, { runId }), o);
  } catch (e) {
    throw new Error(
      `the swap of run ${runId} started on ${host.label} but its end is unknown (${cause}; then ${e instanceof Error ? e.message : String(e)}): ` +
        'it runs on by itself on the remote; the next chroma-ferry command finishes or reverses it',
    );
  }
  const f = res.facts;
  const how = res.applied === 'finish-swap' ? `; this run finished it after: ${cause}` : `; after: ${cause}`;
  const j = ownJournal(f, runId);
  const s = swapSlotsOf(f);
  // Without this run's journal the launcher stopped before the intent: nothing was renamed.
  const ids: SwapIds = j?.ids ?? { next: nextId ?? '' };
  if (j && holds(s.live, j.ids.next)) return { status: 'done', ids, note: `swapped${how}` };
  const waiting = j ? holds(s.next, j.ids.next) : nextId === undefined || holds(s.next, nextId);
  if (waiting && (!j || (ids.live === undefined ? f.live.kind === 'missing' : holds(f.live, ids.live)))) {
    return { status: 'not-swapped', ids, note: `the live dir is unchanged${how}` };
  }
  throw new Error(`the swap of run ${runId} ended in no known state (${cause}): ${res.after.reason}; ${res.after.resolve ?? ''}`.trim());
}

export interface UndoSwapResult {
  /** NAME holds the data live before the swap again. */
  restored: boolean;
  /** This undo renamed anything (the swap had happened, fully or in part). */
  renamed: boolean;
  /** Where the rejected new data is kept (NAME.failed-<stamp>), when this undo moved it there. */
  failedDir?: string;
}

/**
 * Undo run `runId`'s swap of `ids` by its journal: the worker renames back, each rename decided by
 * the ids found. The rejected data is then kept as NAME.failed-<stamp> (only when this undo took
 * it out of NAME). A swap that never happened is left as it is.
 */
export async function undoSwap(host: RemoteHost, l: RemoteLayout, runId: string, ids: SwapIds, o: ReconnectOptions = {}): Promise<UndoSwapResult> {
  const { renamed } = await reverseSwap(host, l, runId, o);
  if (!renamed) return { restored: true, renamed };
  const failedDir = path.posix.join(l.volume, `${l.name}.failed-${utcStamp()}`);
  const kept = await withReconnect(() => host.run(keepRejectedScript(l.next, failedDir, ids.next)), o);
  return { restored: true, renamed, failedDir: /^kept=yes$/m.test(kept.stdout) ? failedDir : undefined };
}

/**
 * Reverse run `runId`'s swap (a deploy's or a rollback's) by its journal, to where the volume was
 * before it: the worker renames back, each rename decided by the ids found. Nothing when the run
 * has no journal (its launcher stopped before the intent) or its swap never moved anything. A full
 * volume says so ("volume full: ..."): trying again would not help.
 */
export async function reverseSwap(host: RemoteHost, l: RemoteLayout, runId: string, o: ReconnectOptions = {}): Promise<{ renamed: boolean }> {
  let renamed = false;
  for (let attempt = 0; ; attempt++) {
    const facts = await withReconnect(() => inspectVolume(host, l), o);
    const j = ownJournal(facts, runId);
    if (!j || atStart(facts, j)) return { renamed };
    if (attempt >= 3) throw new Error(`the swap of run ${runId} could not be reversed after ${attempt} tries; the journal ${swapJournalFile(l)} and the ids on the volume say where each dir is`);
    renamed = true;
    try {
      await host.run(resumeSwapScript(l, j, 'reverse'));
    } catch (e) {
      if (refusalOf(e)?.reason === 'volume-full') throw refusalError(e, { host: host.label, volume: l.volume })!;
      if (!isTransportError(e) && !refusalOf(e)) throw e; // otherwise: look again (the worker may have ended it)
    }
  }
}

/** NAME.new moved to FAILED, only while it holds the rejected data's id. */
function keepRejectedScript(next: string, failed: string, id: string): RemoteScript {
  return remoteScript('keep the rejected data aside', `
    [ -d "$1" ] && [ ! -L "$1" ] || exit 0
    cur=""; [ -f "$1/$3" ] && read -r cur < "$1/$3"
    [ "$cur" = "$4" ] || exit 0
    if [ -e "$2" ] || [ -L "$2" ]; then echo "$2 exists" >&2; exit 1; fi
    mv "$1" "$2" && echo "kept=yes"
  `, [next, failed, DATA_ID_FILE, id]);
}

// ---------------------------------------------------------------------------------------------
// Removing, recording

/**
 * The reassemble's undo: NAME.new removed when it holds this run's data (or no id: a partial
 * extraction), NAME is there, no swap is unfinished and it is not the verified data. Otherwise it
 * stays (and the summary says so).
 */
export async function removeUnusedNext(host: RemoteHost, l: RemoteLayout, nextId: string, o: ReconnectOptions = {}): Promise<boolean> {
  const facts = await withReconnect(() => inspectVolume(host, l), o);
  if (facts.next.kind === 'missing') return true;
  const settled = reconcile(facts).action !== 'unknown' && !activeJournal(facts);
  const ours = facts.next.kind === 'dir' && (facts.next.id === undefined || facts.next.id === nextId) && facts.next.id !== facts.verifiedId;
  if (!(settled && ours && facts.live.kind === 'dir')) return false;
  await withReconnect(() => host.run(remoteScript('remove NAME.new', `
    [ -d "$1" ] && [ ! -L "$1" ] || exit 0
    cur=""; [ -f "$1/$2" ] && read -r cur < "$1/$2"
    [ "$cur" = "$3" ] || exit 0
    rm -rf "$1"
  `, [l.next, DATA_ID_FILE, facts.next.id ?? ''])), o);
  return true;
}

/**
 * After verify: run `runId`'s trashed NAME.old removed, only when its journal says done, NAME holds
 * the journal's new data and that data is the verified one, and the trashed dir holds the
 * journal's old id (never the verified data; nothing while NAME is missing). Decided on the
 * remote from the volume itself, so a run and its plan run the same script.
 */
export function removeSwapTrashScript(l: RemoteLayout, runId: string): RemoteScript {
  return remoteScript('remove the trashed previous NAME.old', `
    journal=$1 live=$2 tro=$3 verified=$4 idf=$5 run=$6
    ${FIRST_LINE}
    first_line "$journal"; j=$line
    case $j in *"\\"runId\\":\\"$run\\""*) ;; *) exit 0 ;; esac
    case $j in *'"phase":"done"'*) ;; *) exit 0 ;; esac
    value() { v=\${j#*\\"$1\\":\\"}; if [ "$v" = "$j" ]; then echo ""; else echo "\${v%%\\"*}"; fi; }
    next=$(value next); old=$(value old)
    first_line "$verified"; ver=$line
    first_line "$live/$idf"; now=$line
    [ -n "$next" ] && [ "$ver" = "$next" ] && [ "$now" = "$next" ] || exit 0
    if [ -d "$tro" ] && [ ! -L "$tro" ]; then
      first_line "$tro/$idf"; cur=$line
      [ -n "$old" ] && [ "$cur" = "$old" ] && [ "$cur" != "$ver" ] || exit 0
      rm -rf "$tro" || exit 1
      echo "removed=$tro"
    fi
    rmdir "\${tro%/*}" 2>/dev/null
    exit 0
  `, [swapJournalFile(l), l.live, swapTrashPath(l, runId), verifiedFile(l), DATA_ID_FILE, runId]);
}

/** The look at the volume every command starts with (what `reconcileBeforeCommand` runs first, and a plan prints). */
export function commandInspectScript(l: RemoteLayout): RemoteScript {
  return inspectVolumeScript(l, 60);
}

/**
 * Record `id` as the last verified data (verify passed for what NAME holds; also a deploy or a
 * rollback accepted without a check, so that the volume reconciles clean afterwards).
 */
export async function recordVerifiedData(host: RemoteHost, l: RemoteLayout, id: string, o: ReconnectOptions = {}): Promise<void> {
  await withReconnect(() => runRefusing(host, recordVerifiedScript(l, id), { volume: l.volume }, { signal: o.signal }), o);
}

/**
 * Record what NAME holds as the last verified data (a rollback run by hand from its plan, which
 * cannot know the id beforehand); NAME without an id is stamped `fallbackId` first.
 */
export function recordLiveVerifiedScript(l: RemoteLayout, fallbackId: string): RemoteScript {
  if (!isDataId(fallbackId)) throw new Error(`not a data id: ${fallbackId}`);
  return remoteScript('record the live data as verified', `
    set -eu
    live=$1 idf=$2 verified=$3 id=""
    trap 'rm -f "$verified.tmp.$$" "$live/$idf.tmp"' EXIT
    if [ -L "$live" ] || [ ! -d "$live" ]; then echo "$live is not a directory" >&2; exit 1; fi
    [ -f "$live/$idf" ] && IFS= read -r id < "$live/$idf" || :
    if [ -z "$id" ]; then id=$4; printf '%s\\n' "$id" > "$live/$idf.tmp"; mv -f "$live/$idf.tmp" "$live/$idf"; fi
    mkdir -p "\${verified%/*}"
    printf '%s\\n' "$id" > "$verified.tmp.$$"
    mv -f "$verified.tmp.$$" "$verified"
    echo "verified=$id"
  `, [l.live, DATA_ID_FILE, verifiedFile(l), fallbackId]);
}

// ---------------------------------------------------------------------------------------------

const holds = (s: DataSlot | undefined, id: string | undefined) => id !== undefined && s?.kind === 'dir' && s.id === id;

function ownJournal(f: VolumeFacts, runId: string): SwapJournal | undefined {
  const j = f.journal;
  return j && j !== 'corrupt' && j.runId === runId ? j : undefined;
}

/** A journal whose swap is not settled (not reversed, not done and verified). */
function activeJournal(f: VolumeFacts): boolean {
  const j = f.journal;
  if (j === 'corrupt') return true;
  return Boolean(j && j.phase !== 'reversed' && !(j.phase === 'done' && f.verifiedId === j.ids.next));
}

/**
 * The volume is where it was before the swap of journal `j`: its state 0, or the journal says
 * reversed and live holds what it held (the rejected data since kept aside).
 */
function atStart(f: VolumeFacts, j: SwapJournal): boolean {
  const liveBefore = j.ids.live === undefined ? f.live.kind === 'missing' : holds(f.live, j.ids.live);
  return matchingStates(f, j).includes(0) || (j.phase === 'reversed' && liveBefore);
}
