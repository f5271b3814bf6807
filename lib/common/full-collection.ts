/**
 * V8's full collection, asked for by long streams whose short-lived data outlives the young
 * generation (it waits in a stream queue or a request in flight) and so piles up in the old
 * generation until V8 decides on a full collection, later the longer the run: the peak memory
 * would then grow with the amount of data streamed. One full collection whenever the pile passes
 * a limit keeps the peak independent of the data's size, at a few milliseconds each (the live
 * heap of a stream is small). V8's gc() is exposed at runtime for this; where that is not
 * possible the collectors are no-ops.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

type Gc = () => void;
let gc: Gc | null | undefined;

/** The full collection, or null where it cannot be exposed. */
export function fullCollection(): Gc | null {
  if (gc === undefined) {
    try {
      v8.setFlagsFromString('--expose-gc');
      gc = vm.runInNewContext('gc') as Gc;
    } catch {
      gc = null;
    }
  }
  return gc;
}

/**
 * Counts units of work (records, bytes); every `checkEvery` of them reads `held()` (the memory in
 * question) and, above `limitBytes`, asks for a full collection (so only as often as the garbage
 * needs it).
 */
export function garbageCollector(held: () => number, limitBytes: number, checkEvery: number, collect: () => Gc | null = fullCollection): (units: number) => void {
  let since = 0;
  return (units) => {
    since += units;
    if (since < checkEvery) return;
    since = 0;
    if (held() > limitBytes) collect()?.();
  };
}

/** A collector watching V8's heap in use (the long streams of migrate). */
export function heapGarbageCollector(limitBytes: number, checkEvery: number, collect: () => Gc | null = fullCollection): (units: number) => void {
  return garbageCollector(() => v8.getHeapStatistics().used_heap_size, limitBytes, checkEvery, collect);
}
