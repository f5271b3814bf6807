/**
 * A full volume says so, in one wording wherever it is met (a remote script's `volume-full`
 * refusal, a local state write, the deploy preflight's space check):
 * `volume full: N MiB free, needed M MiB (WHERE); FIX`.
 */
import { UserError } from './errors.ts';

/** The fix said when the caller has none more precise. */
export const FREE_SPACE_FIX = 'free space there and run again';

/** MiB free, rounded down (what is there), and MiB needed, rounded up (at least 1). */
export function freeMib(bytes: number): number {
  return Math.max(0, Math.floor(bytes / 2 ** 20));
}

export function neededMib(bytes: number): number {
  return Math.max(1, Math.ceil(bytes / 2 ** 20));
}

/** The one line. `free` and `needed` in MiB (or `?` when unknown). */
export function volumeFullLine(free: number | string, needed: number | string, where: string, fix = FREE_SPACE_FIX): string {
  return `volume full: ${free} MiB free, needed ${needed} MiB (${where}); ${fix}`;
}

/**
 * A full volume met part-way through a run (a state file that cannot be written): not a refusal
 * before any change, so the run still ends with its summary, the line as its error (exit 1).
 */
export class VolumeFullError extends UserError {
  constructor(line: string) {
    super(line, 1);
    this.name = 'VolumeFullError';
  }
}
