/**
 * The swap as a journaled transaction on the remote.
 *
 * The data moves NAME.old -> .ferry/trash/RUN/old, NAME -> NAME.old, NAME.new -> NAME. Before the
 * first rename the launcher checks every dir holds the data id it should (stamping an id into a
 * live or old dir that has none) and writes the intent to `.ferry/swap-journal-NAME.json`
 * (atomically: temp + rename). A worker started with `setsid` (perl's POSIX::setsid, else nohup,
 * where util-linux is missing), stdin/stdout/stderr on `.ferry/swap-NAME.log`, does the renames
 * and records each phase: a dropped connection cannot stop it half-way. Each rename is decided by
 * the ids actually found, so the same worker resumes a swap from any point, forward or in
 * reverse; a failed rename makes it reverse itself. The launcher waits a bounded time for the
 * worker and exits 0 when the swap is done, else with a refusal status (lib/remote/refusals.ts);
 * a full volume refuses (`volume-full`) before the intent is written.
 *
 * A rollback's swap is the same transaction in other places (`SwapJournal.rollback`): NAME ->
 * NAME.failed-STAMP (the journal's `old` place), the data put back (NAME.old, or the backup
 * staged in .ferry/restore-RUN/NAME: the `next` place) -> NAME, nothing to the trash. The places
 * are computed here from the layout and the journal's checked fields (`swapPlaces`), never read as
 * paths from the remote, so reconciliation finishes or reverses it like a deploy's.
 */
import path from 'node:path';
import type { RemoteLayout } from '../remote/layout.ts';
import { trashDir } from '../remote/layout.ts';
import { failedDirPath, restoreStagingDir } from '../remote/rollback-scripts.ts';
import { refuseSh } from '../remote/refusals.ts';
import { withSpaceGuard } from '../remote/space-guard.ts';
import { remoteScript, type RemoteScript } from '../remote/shell.ts';
import { DATA_ID_FILE, isDataId, isRunId, liveBeforeId, oldBeforeId, verifiedFile } from './data-id.ts';
import { WAIT_GONE_SH } from '../remote/process-alive.ts';

export const SWAP_PHASES = ['intent', 'old-moved', 'live-moved', 'done', 'reversing', 'reversed'] as const;
export type SwapPhase = (typeof SWAP_PHASES)[number];

/** The data ids a swap moves: `live` goes to NAME.old, `next` to NAME, `old` to the trash. */
export interface SwapIds {
  /** The live data before the swap (absent: there was no live dir). */
  live?: string;
  /** The new data, in NAME.new before the swap. */
  next: string;
  /** The previous NAME.old (absent: there was none). */
  old?: string;
}

/**
 * A rollback's swap: NAME goes to NAME.failed-`stamp`, the data put back comes from NAME.old
 * (`from: 'old'`) or from the backup staged in .ferry/restore-RUN/NAME (`from: 'backup'`).
 */
export interface RollbackSwap {
  from: 'old' | 'backup';
  /** The UTC stamp of the NAME.failed-<stamp> dir (20260304T050607Z). */
  stamp: string;
}

/** `.ferry/swap-journal-NAME.json`: one line of JSON. */
export interface SwapJournal {
  v: 1;
  runId: string;
  phase: SwapPhase;
  ids: SwapIds;
  startedAt: string;
  /** Present for a rollback's swap: its places (see swapPlaces). */
  rollback?: RollbackSwap;
}

/** Where a swap's data is moved: the places of its ids `live`, `next` and `old`, and the trash. */
export interface SwapPlaces {
  /** NAME. */
  live: string;
  /** Where the data that becomes NAME waits: NAME.new (deploy), NAME.old or the staged backup (rollback). */
  next: string;
  /** Where NAME goes: NAME.old (deploy), NAME.failed-STAMP (rollback). */
  old: string;
  /** Where the previous NAME.old goes (deploy; a rollback moves nothing there). */
  trash: string;
}

const UTC_STAMP_RE = /^\d{8}T\d{6}Z$/;

/** The places of journal `j`'s swap, from the layout and the journal's checked fields only. */
export function swapPlaces(l: RemoteLayout, j: Pick<SwapJournal, 'runId' | 'rollback'>): SwapPlaces {
  const trash = swapTrashPath(l, j.runId);
  const rb = j.rollback;
  if (!rb) return { live: l.live, next: l.next, old: l.old, trash };
  if (!UTC_STAMP_RE.test(rb.stamp)) throw new Error(`not a UTC stamp: ${rb.stamp}`);
  const next = rb.from === 'old' ? l.old : path.posix.join(restoreStagingDir(l, j.runId), l.name);
  return { live: l.live, next, old: failedDirPath(l, rb.stamp), trash };
}

export function swapJournalFile(l: RemoteLayout): string {
  return path.posix.join(l.ferry, `swap-journal-${l.name}.json`);
}

/** The worker's log (its stdout and stderr, appended). */
export function swapLogFile(l: RemoteLayout): string {
  return path.posix.join(l.ferry, `swap-${l.name}.log`);
}

/** The worker's pid, for a later look whether it still runs. */
export function swapPidFile(l: RemoteLayout): string {
  return path.posix.join(l.ferry, `swap-${l.name}.pid`);
}

/** Where run `runId`'s swap puts the previous NAME.old. */
export function swapTrashPath(l: RemoteLayout, runId: string): string {
  return path.posix.join(trashDir(l, runId), 'old');
}

/** A journal read from the remote, or 'corrupt' when it is not one we wrote (never trusted further). */
export function parseSwapJournal(text: string): SwapJournal | 'corrupt' {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return 'corrupt';
  }
  if (!v || typeof v !== 'object') return 'corrupt';
  const j = v as Partial<Record<keyof SwapJournal, unknown>> & { ids?: Record<string, unknown> };
  const ids = j.ids;
  if (j.v !== 1 || !isRunId(j.runId as string) || !SWAP_PHASES.includes(j.phase as SwapPhase) || typeof j.startedAt !== 'string') return 'corrupt';
  if (!ids || typeof ids !== 'object' || !isDataId(ids.next as string)) return 'corrupt';
  for (const k of ['live', 'old'] as const) if (ids[k] !== undefined && !isDataId(ids[k] as string)) return 'corrupt';
  if (!distinct(ids as unknown as SwapIds)) return 'corrupt';
  const parsed: SwapIds = { next: ids.next as string };
  if (ids.live !== undefined) parsed.live = ids.live as string;
  if (ids.old !== undefined) parsed.old = ids.old as string;
  const journal: SwapJournal = { v: 1, runId: j.runId as string, phase: j.phase as SwapPhase, ids: parsed, startedAt: j.startedAt };
  const rb = (v as { rollback?: unknown }).rollback;
  if (rb !== undefined) {
    const r = rb as Partial<Record<keyof RollbackSwap, unknown>> | null;
    if (!r || typeof r !== 'object' || (r.from !== 'old' && r.from !== 'backup') || typeof r.stamp !== 'string' || !UTC_STAMP_RE.test(r.stamp)) return 'corrupt';
    // A rollback moves nothing to the trash.
    if (parsed.old !== undefined) return 'corrupt';
    journal.rollback = { from: r.from, stamp: r.stamp };
  }
  return journal;
}

function distinct(ids: SwapIds): boolean {
  const present = [ids.live, ids.next, ids.old].filter((x) => x !== undefined);
  return new Set(present).size === present.length;
}

export interface SwapOptions {
  /** How long the launcher waits for the worker before it reports `swap-timeout` (default 60 s). */
  waitSeconds?: number;
  /** The journal's `startedAt` (default now). */
  startedAt?: Date;
}

/**
 * `ids.live` / `ids.old` (and a rollback's `ids.next`) of a fresh swap that the launcher reads on
 * the remote: the id the dir holds, `live-before:RUN` / `old-before:RUN` (the rollback's given
 * fallback) stamped into one without, nothing for a missing dir. The ids found are printed
 * (`live_id=`, `old_id=`, `next_id=`) and written in the journal.
 */
export const FOUND_ID = '@found';

/**
 * Start the swap of run `runId`: check the dirs hold `ids` (stamping `ids.live` / `ids.old` into
 * a live / old dir without an id), refuse (`not-a-dir`, `volume-changed`, `verified-in-the-way`)
 * with nothing renamed, write the intent, then run the worker and wait for it.
 */
export function journaledSwapScript(l: RemoteLayout, runId: string, ids: SwapIds, o: SwapOptions = {}): RemoteScript {
  const journal: SwapJournal = { v: 1, runId, phase: 'intent', ids, startedAt: (o.startedAt ?? new Date()).toISOString() };
  return launcher(l, journal, 'fresh', o);
}

/**
 * Start rollback run `runId`'s swap `rb`: NAME (its id found, or stamped `live-before:RUN`) to
 * NAME.failed-STAMP, the data put back (its id found, or stamped `nextFallbackId`) to NAME;
 * journaled and run by the same detached worker as a deploy's swap, refused the same way.
 */
export function rollbackSwapScript(l: RemoteLayout, runId: string, rb: RollbackSwap, nextFallbackId: string, o: SwapOptions = {}): RemoteScript {
  if (!isDataId(nextFallbackId)) throw new Error(`not a data id: ${nextFallbackId}`);
  const journal: SwapJournal = { v: 1, runId, phase: 'intent', ids: { live: FOUND_ID, next: FOUND_ID }, startedAt: (o.startedAt ?? new Date()).toISOString(), rollback: rb };
  return launcher(l, journal, 'fresh', o, nextFallbackId);
}

/** The ids a launcher printed (`live_id=`, `old_id=`, `next_id=`: what it found for FOUND_ID); `next` when given. */
export function parseSwapIds(stdout: string, next?: string): SwapIds {
  const found = /^next_id=(.*)$/m.exec(stdout)?.[1];
  const ids: SwapIds = { next: next ?? (isDataId(found) ? found : '') };
  const live = /^live_id=(.*)$/m.exec(stdout)?.[1];
  const old = /^old_id=(.*)$/m.exec(stdout)?.[1];
  if (isDataId(live)) ids.live = live;
  if (isDataId(old)) ids.old = old;
  return ids;
}

/**
 * Take an interrupted swap (its journal as inspected) to the end: `forward` to `done`, `reverse`
 * to `reversed` (the journal says `reversing` before the first rename back).
 */
export function resumeSwapScript(l: RemoteLayout, journal: SwapJournal, direction: 'forward' | 'reverse', o: SwapOptions = {}): RemoteScript {
  return launcher(l, journal, direction, o);
}

/** The `phase=` and `worker_rc=` lines a launcher printed. */
export function parseSwapOutcome(stdout: string): { phase?: SwapPhase; workerRc?: number } {
  const phase = /^phase=(.*)$/m.exec(stdout)?.[1];
  const rc = /^worker_rc=(\d+)$/m.exec(stdout)?.[1];
  return { phase: SWAP_PHASES.includes(phase as SwapPhase) ? (phase as SwapPhase) : undefined, workerRc: rc === undefined ? undefined : Number(rc) };
}

function launcher(l: RemoteLayout, j: SwapJournal, mode: 'fresh' | 'forward' | 'reverse', o: SwapOptions, nextFallbackId = ''): RemoteScript {
  if (!isRunId(j.runId)) throw new Error(`not a run id: ${j.runId}`);
  const found = (id: string | undefined) => mode === 'fresh' && id === FOUND_ID;
  for (const id of [j.ids.live, j.ids.next, j.ids.old]) if (id !== undefined && !isDataId(id) && !found(id)) throw new Error(`not a data id: ${id}`);
  if (found(j.ids.next) && !nextFallbackId) throw new Error('the new data\'s id must be given');
  if (j.rollback && j.ids.old !== undefined) throw new Error('a rollback moves nothing to the trash');
  const places = swapPlaces(l, j);
  // Ids found on the remote are added there, at @MORE@ (inside "ids", after the given ones).
  const given: Partial<SwapIds> = {};
  if (!found(j.ids.next)) given.next = j.ids.next;
  if (j.ids.live !== undefined && !found(j.ids.live)) given.live = j.ids.live;
  if (j.ids.old !== undefined && !found(j.ids.old)) given.old = j.ids.old;
  if (!distinct(given as SwapIds)) throw new Error(`the ids of a swap must differ: ${JSON.stringify(j.ids)}`);
  const template = JSON.stringify({ ...j, ids: given, phase: '@PHASE@' }).replace(/("ids":\{[^}]*)\}/, '$1@MORE@}');
  const wait = Math.max(1, Math.ceil(o.waitSeconds ?? 60));
  const what = j.rollback ? 'rollback swap' : 'swap';
  const title = mode === 'fresh' ? (j.rollback ? 'put the previous data back (journaled)' : 'swap the new dir in (journaled)') : `${mode === 'forward' ? 'finish' : 'reverse'} an interrupted ${what}`;
  return withSpaceGuard(remoteScript(title, LAUNCHER, [
    places.live, places.old, places.next, places.trash, swapJournalFile(l), swapPidFile(l), swapLogFile(l), verifiedFile(l), template,
    j.ids.live ?? '', j.ids.next, j.ids.old ?? '', mode, String(wait), WORKER, j.runId, DATA_ID_FILE, liveBeforeId(j.runId), oldBeforeId(j.runId),
    found(j.ids.next) ? nextFallbackId : '',
  ]), l.ferry, 64 * 1024);
}

/** sh: the first line of file $1 in $line ("" when there is none); no process started. */
export const FIRST_LINE = `first_line() { line=""; [ -f "$1" ] && IFS= read -r line < "$1"; return 0; }`;

/** sh shared by launcher and worker: entry kinds, ids, the journal write. */
const COMMON = `
  ${FIRST_LINE}
  # kind PATH: k=symlink, dir, file or missing. idof DIR: x=the data id DIR holds, "" when none.
  # (They set a variable: a command substitution would fork the shell each time.)
  kind() { if [ -L "$1" ]; then k=symlink; elif [ -d "$1" ]; then k=dir; elif [ -e "$1" ]; then k=file; else k=missing; fi; }
  idof() { [ -d "$1" ] && [ ! -L "$1" ] && [ -f "$1/$idf" ] && read -r x < "$1/$idf" || x=""; }
  has() { [ -n "$2" ] && [ -d "$1" ] && [ ! -L "$1" ] && [ -f "$1/$idf" ] && read -r x < "$1/$idf" && [ "$x" = "$2" ]; }
  gone() { [ ! -e "$1" ] && [ ! -L "$1" ]; }
  journal() { printf '%s\\n' "\${tpl%%@PHASE@*}$1\${tpl#*@PHASE@}" > "$journal.tmp" && mv -f "$journal.tmp" "$journal" || { rm -f "$journal.tmp"; return 1; }; }
`;

const WORKER = `
  trap '' HUP INT PIPE
  mode=$1 live=$2 old=$3 next=$4 tro=$5 journal=$6 pidf=$7 tpl=$8 lid=$9; shift 9; nid=$1 oid=$2 idf=$3
  ${COMMON}
  echo "$$" > "$pidf"
  log() { echo "swap $*"; }
  step() { journal "$1" || { log "cannot write the journal ($1)"; return 1; }; log "phase $1"; }
  move() {
    gone "$2" || { log "$2 exists: $1 not renamed onto it"; return 1; }
    mv "$1" "$2" || { log "rename $1 -> $2 failed"; return 1; }
    log "renamed $1 -> $2"
  }
  forward() {
    if has "$old" "$oid"; then { [ -d "\${tro%/*}" ] || mkdir -p "\${tro%/*}"; } && move "$old" "$tro" || return 1; fi
    step old-moved || return 1
    if has "$live" "$lid"; then move "$live" "$old" || return 1; fi
    step live-moved || return 1
    if has "$next" "$nid"; then move "$next" "$live" || return 1; fi
    has "$live" "$nid" || { log "$live does not hold $nid"; return 1; }
    step done
  }
  reverse() {
    if has "$live" "$nid"; then move "$live" "$next" || return 1; fi
    if has "$old" "$lid"; then move "$old" "$live" || return 1; fi
    if has "$tro" "$oid"; then move "$tro" "$old" || return 1; fi
    has "$next" "$nid" && { [ -z "$lid" ] || has "$live" "$lid"; } && { [ -z "$oid" ] || has "$old" "$oid"; } || { log "the dirs are not back in place"; return 1; }
    step reversed
  }
  log "worker $$: $mode"
  case $mode in
    forward) forward && exit 0; log "the swap failed: reversing it"; step reversing; reverse && exit 3 ;;
    reverse) reverse && exit 0 ;;
  esac
  log "REVERSAL FAILED: the journal and the ids on the volume say where each dir is"
  exit 1
`;

const LAUNCHER = `
  set -u
  live=$1 old=$2 next=$3 tro=$4 journal=$5 pidf=$6 logf=$7 verified=$8 tpl=$9; shift 9
  lid=$1 nid=$2 oid=$3 mode=$4 wait=$5 worker=$6 run=$7 idf=$8 livebefore=$9; shift 9; oldbefore=$1 nextfallback=$2
  ${COMMON}
  changed() { ${refuseSh('volume-changed', { what: '"$1"' })}; }
  # phase_of: p=the phase the journal says ("" when none)
  phase_of() {
    first_line "$journal"; j=$line; p=""
    for ph in ${SWAP_PHASES.join(' ')}; do case $j in *"\\"phase\\":\\"$ph\\""*) p=$ph; return ;; esac; done
  }
  # expect DIR ID WHAT: DIR holds ID (or no id yet: stamped once every check passed), or DIR is missing when ID is empty
  expect() {
    kind "$1"
    case $k in dir|missing) ;; *) ${refuseSh('not-a-dir', { path: '"$1"', kind: '"$k"' })} ;; esac
    if [ -z "$2" ]; then [ "$k" = missing ] || changed "$3 exists, expected none"; return 0; fi
    [ "$k" = dir ] || changed "$3 is missing, expected $2"
    idof "$1"; cur=$x
    [ "$cur" = "$2" ] || { [ -z "$cur" ] && [ "$3" != NAME.new ]; } || changed "$3 holds \${cur:-no id}, expected $2"
  }
  stamp() {
    [ -n "$2" ] && [ -d "$1" ] && [ ! -f "$1/$idf" ] || return 0
    printf '%s\\n' "$2" > "$1/$idf.tmp" && mv -f "$1/$idf.tmp" "$1/$idf" || { rm -f "$1/$idf.tmp"; return 1; }
  }
  # found DIR FALLBACK: fid=the id DIR holds (FALLBACK when it has none; "" when DIR is missing)
  found() {
    kind "$1"
    case $k in
      missing) fid="" ;;
      dir) idof "$1"; case $x in ''|*[!A-Za-z0-9._@:-]*) fid=$2 ;; [a-z]*:?*) fid=$x ;; *) fid=$2 ;; esac ;;
      *) ${refuseSh('not-a-dir', { path: '"$1"', kind: '"$k"' })} ;;
    esac
  }
  [ -d "\${journal%/*}" ] || mkdir -p "\${journal%/*}" || exit 1
  case $mode in
    fresh)
      more="" q='"' nwhat=NAME.new
      if [ "$nid" = ${FOUND_ID} ]; then
        # a rollback: the data put back has its id, or gets the fallback (stamped below)
        found "$next" "$nextfallback"; nid=$fid; nwhat="the data to put back"
        [ -n "$nid" ] || changed "$next is missing: nothing to put back"
        more="$more,\${q}next\${q}:\${q}$nid\${q}"
      fi
      if [ "$lid" = ${FOUND_ID} ]; then found "$live" "$livebefore"; lid=$fid; [ -z "$lid" ] || more="$more,\${q}live\${q}:\${q}$lid\${q}"; fi
      if [ "$oid" = ${FOUND_ID} ]; then found "$old" "$oldbefore"; oid=$fid; [ -z "$oid" ] || more="$more,\${q}old\${q}:\${q}$oid\${q}"; fi
      if [ -n "$lid" ] && { [ "$lid" = "$oid" ] || [ "$lid" = "$nid" ]; }; then changed "NAME holds $lid, as does NAME.old or NAME.new"; fi
      if [ -n "$oid" ] && [ "$oid" = "$nid" ]; then changed "NAME.old holds $oid, as does NAME.new"; fi
      case $tpl in *'{@MORE@'*) more=\${more#,} ;; esac
      tpl="\${tpl%%@MORE@*}$more\${tpl#*@MORE@}"
      expect "$next" "$nid" "$nwhat"
      expect "$live" "$lid" NAME
      expect "$old" "$oid" NAME.old
      gone "$tro" || changed "$tro exists"
      first_line "$verified"; ver=$line
      if [ -n "$oid" ] && [ "$ver" = "$oid" ]; then ${refuseSh('verified-in-the-way', { path: '"$old"', id: '"$oid"' })}; fi
      phase_of; case $p in ''|done|reversed) ;; *) changed "an unfinished swap journal is on the volume (phase $p)" ;; esac
      stamp "$live" "$lid" && stamp "$old" "$oid" && stamp "$next" "$nid" || exit 1
      journal intent || exit 1
      echo "live_id=$lid"
      echo "old_id=$oid"
      echo "next_id=$nid"
      wmode=forward ;;
    forward|reverse)
      tpl="\${tpl%%@MORE@*}\${tpl#*@MORE@}"
      first_line "$journal"
      case $line in *"\\"runId\\":\\"$run\\""*) ;; *) changed "the swap journal is not the one of run $run" ;; esac
      if [ "$mode" = reverse ]; then journal reversing || exit 1; fi
      wmode=$mode ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
  # Detached: own session, no terminal, output to the log; a dropped connection does not reach it.
  set -- "$wmode" "$live" "$old" "$next" "$tro" "$journal" "$pidf" "$tpl" "$lid" "$nid" "$oid" "$idf"
  if command -v setsid >/dev/null 2>&1; then set -- setsid sh -c "$worker" ferry-swap "$@"
  elif command -v perl >/dev/null 2>&1; then set -- perl -MPOSIX -e 'POSIX::setsid(); exec @ARGV or exit 127' sh -c "$worker" ferry-swap "$@"
  else set -- nohup sh -c "$worker" ferry-swap "$@"; fi
  if [ -e "$pidf" ] || [ -L "$pidf" ]; then rm -f "$pidf"; fi
  "$@" </dev/null >>"$logf" 2>&1 &
  pid=$!
  echo "$pid" > "$pidf"
  ${WAIT_GONE_SH}
  if ! wait_gone "$pid" "$wait"; then phase_of; echo "phase=$p"; ${refuseSh('swap-timeout', { run: '"$run"', seconds: '"$wait"', phase: '"$p"' })}; fi
  wait "$pid"; rc=$?
  phase_of
  echo "phase=$p"
  echo "worker_rc=$rc"
  case $mode:$p in
    fresh:done|forward:done|reverse:reversed) exit 0 ;;
    fresh:reversed|forward:reversed) ${refuseSh('swap-reversed', { run: '"$run"' })} ;;
  esac
  ${refuseSh('swap-interrupted', { run: '"$run"', phase: '"$p"', rc: '"$rc"' })}
`;
