/**
 * Upload progress for a person: bytes on the remote out of the archive, throughput and ETA.
 * `line` formats one reading; `TransferProgress` decides when a reading is shown: in the live
 * task list once a second (the caller's timer), in plain output (CI, pipes) only when the share
 * on the remote crosses the next tenth, so a log gets at most 11 lines however long the upload.
 */
import { formatBytes } from '../common/units.ts';

export interface TransferReading {
  /** Bytes verified on the remote: sent in this run or found there (a resumed upload). */
  doneBytes: number;
  /** Bytes this run sent since the upload began (the throughput counts only these). */
  sentBytes: number;
  totalBytes: number;
  /** Since the upload began. */
  elapsedMs: number;
}

/** "42.0 MiB / 100.0 MiB (42%), 6.1 MB/s, ETA 10 s" (the ETA is "--" before the first bytes). */
export function transferLine(r: TransferReading): string {
  const share = r.totalBytes > 0 ? Math.min(100, Math.floor((100 * r.doneBytes) / r.totalBytes)) : 100;
  const perSec = r.elapsedMs > 0 ? (r.sentBytes * 1000) / r.elapsedMs : 0;
  const left = Math.max(0, r.totalBytes - r.doneBytes);
  const eta = left === 0 ? '0 s' : perSec > 0 ? formatEta(left / perSec) : '--';
  return `${formatBytes(r.doneBytes)} / ${formatBytes(r.totalBytes)} (${share}%), ${(perSec / 1e6).toFixed(1)} MB/s, ETA ${eta}`;
}

function formatEta(secs: number): string {
  const s = Math.ceil(secs);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** Which readings plain output shows: the first, then one per tenth of the bytes crossed. */
export class TransferProgress {
  private shownTenth = -1;

  /** The line to print for this reading in plain output, or undefined (no new tenth reached). */
  plainLine(r: TransferReading): string | undefined {
    const tenth = r.totalBytes > 0 ? Math.min(10, Math.floor((10 * r.doneBytes) / r.totalBytes)) : 10;
    if (tenth <= this.shownTenth) return undefined;
    this.shownTenth = tenth;
    return transferLine(r);
  }
}
