/**
 * The gate's tally of differences by kind: how many records have each kind, and the first few of
 * them (`collection/id`, the smallest in that order, so the same databases give the same list
 * whatever order the records were read in).
 */
import { DIFFERENCE_KINDS, type DifferenceKind } from './record-diff.ts';

export const FIRST_IDS = 5;

export interface DifferenceTally {
  records: number;
  first_ids: string[];
}

export type DifferenceReport = Record<DifferenceKind, DifferenceTally>;

export class Differences {
  private readonly tally = new Map<DifferenceKind, DifferenceTally>(DIFFERENCE_KINDS.map((k) => [k, { records: 0, first_ids: [] }]));

  add(kind: DifferenceKind, collection: string, id: string): void {
    const t = this.tally.get(kind)!;
    t.records++;
    const ref = `${collection}/${id}`;
    const ids = t.first_ids;
    if (ids.length === FIRST_IDS && ref >= ids[ids.length - 1]!) return;
    let i = ids.length;
    while (i > 0 && ids[i - 1]! > ref) i--;
    ids.splice(i, 0, ref);
    if (ids.length > FIRST_IDS) ids.pop();
  }

  count(kind: DifferenceKind): number {
    return this.tally.get(kind)!.records;
  }

  report(): DifferenceReport {
    return Object.fromEntries([...this.tally].map(([k, t]) => [k, { records: t.records, first_ids: [...t.first_ids] }])) as DifferenceReport;
  }
}

/** `kind=n (a/1, a/2)` for each kind with records: one line of the plain summary. */
export function formatDifferences(d: DifferenceReport): string {
  const parts = DIFFERENCE_KINDS.filter((k) => d[k].records > 0).map((k) => `${k}=${d[k].records} (${d[k].first_ids.join(', ')}${d[k].records > d[k].first_ids.length ? ', ...' : ''})`);
  return parts.length ? parts.join(' ') : 'none';
}
