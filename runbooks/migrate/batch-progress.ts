/** Which import batches of a target are written: a contiguous prefix plus the ones finished out of order (parallel writers). */

/** Batch `i` of a target is written: extend the contiguous prefix, or remember it as done out of order. */
export function markBatchDone(t: { batchesDone: number; doneAbove?: number[] }, i: number): void {
  const above = new Set(t.doneAbove ?? []);
  above.add(i);
  while (above.has(t.batchesDone)) {
    above.delete(t.batchesDone);
    t.batchesDone++;
  }
  t.doneAbove = [...above].sort((a, b) => a - b);
}
