/**
 * The owner record of the volume lock (VOLUME/.ferry/lock/owner.json): parsed leniently (a foreign
 * or damaged record gives an empty holder) and described in one phrase for refusal lines.
 */

/** Who holds the lock; every field may be missing in a foreign or damaged record. */
export interface LockHolder {
  runId?: string;
  command?: string;
  user?: string;
  host?: string;
  pid?: number;
  startedAt?: string;
}

/** The owner record's JSON text as a holder; {} when it is not a JSON object. */
export function parseLockHolder(text: string | undefined): LockHolder {
  try {
    const v = JSON.parse((text ?? '').trim()) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as LockHolder) : {};
  } catch {
    return {};
  }
}

/** " (deploy by ana@laptop, pid 42, since 2026-...)", or "" when the record says nothing. */
export function describeLockHolder(h: LockHolder): string {
  return h.user ? ` (${h.command ?? 'deploy'} by ${h.user}@${h.host}, pid ${h.pid}, since ${h.startedAt})` : '';
}
