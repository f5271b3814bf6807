/**
 * What is really on a volume, read in one script: NAME, NAME.new, NAME.old (kind and data id),
 * the swap journal and the trashed NAME.old of its run (for a rollback's journal: the places of
 * its swap, the data put back and NAME.failed-STAMP), the last verified id, the lock holder and
 * whether a swap worker still runs. The script prints key=value lines; `parseVolumeFacts` turns
 * them into `VolumeFacts`, validating everything (ids, run ids, the journal): nothing read from
 * the remote is used as a path.
 */
import type { RemoteLayout } from '../remote/layout.ts';
import { parseKv } from '../remote/scripts.ts';
import { remoteScript, type RemoteScript } from '../remote/shell.ts';
import { DATA_ID_FILE, isRunId, parseDataId, verifiedFile } from './data-id.ts';
import { parseLockHolder, type LockHolder } from './lock-holder.ts';
import { restoreStagingDir } from '../remote/rollback-scripts.ts';
import { FIRST_LINE, parseSwapJournal, swapJournalFile, swapPidFile, swapTrashPath, type SwapJournal } from './swap-journal.ts';
import { STARTED_AS_SH, WAIT_GONE_SH } from '../remote/process-alive.ts';

export type EntryKind = 'dir' | 'symlink' | 'file' | 'missing';

/** One place on the volume that may hold data. */
export interface DataSlot {
  kind: EntryKind;
  /** The data id it holds; undefined when it has no (valid) id file. */
  id?: string;
}

export interface VolumeFacts {
  live: DataSlot;
  next: DataSlot;
  old: DataSlot;
  /** The trashed NAME.old of the journal's run (only with a readable journal). */
  trash?: DataSlot;
  /** The swap journal; 'corrupt' when a file is there but is not a journal we wrote. */
  journal?: SwapJournal | 'corrupt';
  /** The id of the last data that passed verify. */
  verifiedId?: string;
  /** Who holds the volume lock; undefined when it is free. */
  lock?: LockHolder;
  /** A swap worker still running after the script's wait (alive), one that ran (gone), or none. */
  worker: 'alive' | 'gone' | 'none';
  /**
   * A rollback's journal: its `next` place (the data it puts back: NAME.old or the staged backup)
   * and its `old` place (NAME.failed-STAMP). Absent for a deploy's journal (NAME.new, NAME.old).
   */
  rollbackSlots?: { next: DataSlot; old: DataSlot };
}

/** The slots of the journal's swap, at its places (lib/volume/swap-journal.ts swapPlaces). */
export interface SwapSlots {
  live: DataSlot;
  next: DataSlot;
  old: DataSlot;
  trash: DataSlot;
}

const MISSING: DataSlot = { kind: 'missing' };

/** What the places of the journal's swap hold: NAME.new and NAME.old for a deploy's, a rollback's own places for its. */
export function swapSlotsOf(f: VolumeFacts): SwapSlots {
  return { live: f.live, next: f.rollbackSlots?.next ?? f.next, old: f.rollbackSlots?.old ?? f.old, trash: f.trash ?? MISSING };
}

/** Read the facts; a running swap worker is waited for up to `waitSeconds` first (default 30). */
export function inspectVolumeScript(l: RemoteLayout, waitSeconds = 30): RemoteScript {
  return remoteScript('inspect the volume', `
    live=$1 next=$2 old=$3 journal=$4 verified=$5 lock=$6 pidf=$7 trashroot=$8 idf=$9; shift 9; wait=$1 restoreprefix=$2 name=$3
    ${FIRST_LINE}
    kind() { if [ -L "$1" ]; then echo symlink; elif [ -d "$1" ]; then echo dir; elif [ -e "$1" ]; then echo file; else echo missing; fi; }
    fact() {
      k=$(kind "$2"); echo "$1.kind=$k"
      case $k in dir|symlink) [ -f "$2/$idf" ] && first_line "$2/$idf" && echo "$1.id=$line" ;; esac
      return 0
    }
    ${WAIT_GONE_SH}
    ${STARTED_AS_SH}
    first_line "$pidf"; pid=$line
    case $pid in ''|*[!0-9]*) pid="" ;; esac
    # a recorded pid now used by another process is no worker of ours
    [ -z "$pid" ] || started_as "$pid" ferry-swap || pid=""
    if [ -n "$pid" ]; then
      if wait_gone "$pid" "$wait"; then echo "worker=gone"; else echo "worker=alive"; fi
    else
      echo "worker=none"
    fi
    fact live "$live"; fact next "$next"; fact old "$old"
    if [ -e "$journal" ]; then
      first_line "$journal"; j=$line
      echo "journal=$j"
      run=\${j#*\\"runId\\":\\"}; run=\${run%%\\"*}
      case $run in ''|*[!A-Za-z0-9_-]*) run="" ;; *) if [ "$run" = "$j" ]; then run=""; else echo "trash.run=$run"; fact trash "$trashroot/$run/old"; fi ;; esac
      # a rollback's journal: its places from its checked run id and stamp (never a path read here)
      case $j in *'"rollback":{'*)
        lb='{' rbr='}'
        rb=\${j#*\\"rollback\\":$lb}; rb=\${rb%%$rbr*}
        from=\${rb#*\\"from\\":\\"}; from=\${from%%\\"*}
        stamp=\${rb#*\\"stamp\\":\\"}; stamp=\${stamp%%\\"*}
        case $stamp in [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z) ;; *) stamp="" ;; esac
        if [ -n "$run" ] && [ -n "$stamp" ]; then
          case $from in
            old) echo "rb.from=old"; echo "rb.stamp=$stamp"; fact rbnext "$old"; fact rbold "$live.failed-$stamp" ;;
            backup) echo "rb.from=backup"; echo "rb.stamp=$stamp"; fact rbnext "$restoreprefix$run/$name"; fact rbold "$live.failed-$stamp" ;;
          esac
        fi ;;
      esac
    fi
    [ -f "$verified" ] && first_line "$verified" && echo "verified=$line"
    if [ -d "$lock" ]; then first_line "$lock/owner.json"; echo "lock=held"; echo "lock.owner=$line"; else echo "lock=free"; fi
    exit 0
  `, [l.live, l.next, l.old, swapJournalFile(l), verifiedFile(l), l.lock, swapPidFile(l), l.trashRoot, DATA_ID_FILE, String(Math.max(0, Math.ceil(waitSeconds))),
    restoreStagingDir(l, ''), l.name]);
}

/** The facts from the inspect script's output. */
export function parseVolumeFacts(stdout: string): VolumeFacts {
  const kv = parseKv(stdout);
  const slot = (key: string): DataSlot => {
    const k = kv.get(`${key}.kind`);
    const kind: EntryKind = k === 'dir' || k === 'symlink' || k === 'file' ? k : 'missing';
    const id = parseDataId(kv.get(`${key}.id`));
    return id ? { kind, id } : { kind };
  };
  const facts: VolumeFacts = { live: slot('live'), next: slot('next'), old: slot('old'), worker: 'none' };
  const w = kv.get('worker');
  if (w === 'alive' || w === 'gone') facts.worker = w;
  if (kv.has('journal')) {
    let j = parseSwapJournal(kv.get('journal')!);
    if (j !== 'corrupt' && j.rollback) {
      // The script looked at the places of the journal it read: the same run, source and stamp, or it is no journal of ours.
      const same = kv.get('trash.run') === j.runId && kv.get('rb.from') === j.rollback.from && kv.get('rb.stamp') === j.rollback.stamp;
      if (same) facts.rollbackSlots = { next: slot('rbnext'), old: slot('rbold') };
      else j = 'corrupt';
    }
    facts.journal = j;
    if (j !== 'corrupt' && kv.get('trash.run') === j.runId && isRunId(j.runId)) facts.trash = slot('trash');
  }
  const verified = parseDataId(kv.get('verified'));
  if (verified) facts.verifiedId = verified;
  if (kv.get('lock') === 'held') facts.lock = parseLockHolder(kv.get('lock.owner'));
  return facts;
}

/** The path of a slot on the volume, computed here from the layout (never taken from the remote). */
export function slotPath(l: RemoteLayout, slot: 'live' | 'next' | 'old' | 'trash', runId?: string): string {
  if (slot === 'trash') {
    if (!isRunId(runId)) throw new Error('the trash slot needs the journal\'s run id');
    return swapTrashPath(l, runId);
  }
  return l[slot];
}
