/**
 * Upload progress for a person: bytes on the remote out of the archive, throughput and ETA.
 * `transferLine` formats one reading; `TransferProgress` decides when a reading is shown in plain
 * output (CI, pipes): only when the share on the remote crosses the next tenth, so a log gets at
 * most 11 lines however long the upload. `TransferDisplay` is the one display of a transfer that
 * begins while the archive is still being packed (its size then estimated) and ends in the upload
 * step: the live task list once a second, plain output once per tenth, counted over the whole
 * transfer whichever step shows it.
 */
import { formatBytes } from '../common/units.ts';
import type { OutputMode } from './output.ts';

export interface TransferReading {
  /** Bytes verified on the remote: sent in this run or found there (a resumed upload). */
  doneBytes: number;
  /** Bytes this run sent since the upload began (the throughput counts only these). */
  sentBytes: number;
  totalBytes: number;
  /** The total is an estimate (the archive is still being packed): the share stays under 100%. */
  totalEstimated?: boolean;
  /** Since the upload began. */
  elapsedMs: number;
}

/** The share on the remote in percent, floored; below 100 while the total is an estimate. */
function shareOf(r: TransferReading, parts: number): number {
  const share = r.totalBytes > 0 ? Math.min(parts, Math.floor((parts * r.doneBytes) / r.totalBytes)) : parts;
  return r.totalEstimated ? Math.min(parts - 1, share) : share;
}

/** "42.0 MiB / 100.0 MiB (42%), 6.1 MB/s, ETA 10 s" ("/ ~100.0 MiB" while the total is estimated; the ETA is "--" before the first bytes). */
export function transferLine(r: TransferReading): string {
  const perSec = r.elapsedMs > 0 ? (r.sentBytes * 1000) / r.elapsedMs : 0;
  const left = Math.max(0, r.totalBytes - r.doneBytes);
  const eta = left === 0 && !r.totalEstimated ? '0 s' : perSec > 0 ? formatEta(left / perSec) : '--';
  return `${formatBytes(r.doneBytes)} / ${r.totalEstimated ? '~' : ''}${formatBytes(r.totalBytes)} (${shareOf(r, 100)}%), ${(perSec / 1e6).toFixed(1)} MB/s, ETA ${eta}`;
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
    const tenth = shareOf(r, 10);
    if (tenth <= this.shownTenth) return undefined;
    this.shownTenth = tenth;
    return transferLine(r);
  }
}

/** What the transfer has done so far (the display adds the total). */
export type TransferCounts = Omit<TransferReading, 'totalBytes' | 'totalEstimated'>;

/**
 * One display for one transfer, handed from step to step (`attach`): in the live task list
 * (`tty`) a line once a second, in plain output the first reading and then one line per tenth of
 * the bytes (`update` after each chunk), never repeated by the next step; nothing in `json`.
 */
export class TransferDisplay {
  private total = { bytes: 0, estimated: true };
  private readonly plain = new TransferProgress();
  private show: ((line: string) => void) | undefined;
  private detail: () => string = () => '';
  private ticker: NodeJS.Timeout | undefined;

  constructor(private readonly mode: OutputMode, private readonly counts: () => TransferCounts) {}

  /** The archive's size: an estimate while packing goes on, then the exact size. */
  setTotal(bytes: number, estimated: boolean): void {
    this.total = { bytes, estimated };
  }

  reading(): TransferReading {
    return { ...this.counts(), totalBytes: this.total.bytes, totalEstimated: this.total.estimated };
  }

  /** The display goes to this step's progress line from now on, `detail` appended (chunks, packing). */
  attach(show: (line: string) => void, detail: () => string = () => ''): void {
    this.show = show;
    this.detail = detail;
    if (this.mode === 'tty') {
      this.showNow();
      clearInterval(this.ticker);
      this.ticker = setInterval(() => this.showNow(), 1000);
      this.ticker.unref();
    } else {
      this.update();
    }
  }

  /** After a chunk is on the remote: plain output prints a line when a new tenth is reached. */
  update(): void {
    if (this.mode !== 'plain' || !this.show) return;
    const line = this.plain.plainLine(this.reading());
    if (line) this.show(this.withDetail(line));
  }

  /** No more lines (the step showing it ended). */
  stop(): void {
    clearInterval(this.ticker);
    this.ticker = undefined;
    this.show = undefined;
  }

  private showNow(): void {
    this.show?.(this.withDetail(transferLine(this.reading())));
  }

  private withDetail(line: string): string {
    const d = this.detail();
    return d ? `${line}; ${d}` : line;
  }
}

/**
 * The archive's size while it is being packed: its bytes written so far scaled by the input still
 * to pack (at least what is written, and never the input's own size when nothing is known yet).
 */
export function estimatedArchiveBytes(writtenBytes: number, inputDone: number, inputTotal: number): number {
  if (inputDone <= 0 || writtenBytes <= 0) return Math.max(writtenBytes, inputTotal);
  return Math.max(writtenBytes, Math.round((writtenBytes * inputTotal) / inputDone));
}
