/**
 * One compensation stack per run. Each completed step pushes its undo; on failure, Ctrl-C or
 * SIGTERM the stack unwinds once, newest first. An undo that fails does not stop the others.
 */
export interface UndoOutcome {
  name: string;
  ok: boolean;
  error?: string;
  ms: number;
}

export class CompensationStack {
  private readonly undos: { name: string; fn: () => Promise<void> }[] = [];
  private unwound = false;

  push(name: string, fn: () => Promise<void>): void {
    this.undos.push({ name, fn });
  }

  /** Forget an undo by name (e.g. the lock release once the lock was released normally). */
  drop(name: string): void {
    const i = this.undos.findIndex((u) => u.name === name);
    if (i >= 0) this.undos.splice(i, 1);
  }

  /** The run is finished: nothing left to undo. */
  clear(): void {
    this.undos.length = 0;
  }

  get size(): number {
    return this.undos.length;
  }

  names(): string[] {
    return this.undos.map((u) => u.name);
  }

  async unwind(onUndo?: (name: string, phase: 'start' | 'ok' | 'fail', error?: string) => void): Promise<UndoOutcome[]> {
    if (this.unwound) return [];
    this.unwound = true;
    const out: UndoOutcome[] = [];
    while (this.undos.length) {
      const u = this.undos.pop()!;
      const t0 = performance.now();
      onUndo?.(u.name, 'start');
      try {
        await u.fn();
        out.push({ name: u.name, ok: true, ms: performance.now() - t0 });
        onUndo?.(u.name, 'ok');
      } catch (e) {
        const error = e instanceof Error ? e.message : String(e);
        out.push({ name: u.name, ok: false, error, ms: performance.now() - t0 });
        onUndo?.(u.name, 'fail', error);
      }
    }
    return out;
  }
}
