/**
 * A promise started now and awaited later (work started ahead, looks run together): its
 * rejection reaches whoever awaits it, and is never reported as unhandled meanwhile (nor when a
 * caller that stops early never awaits it).
 */
export function awaitedLater<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}
