/**
 * Which backup archives a retention policy removes. Pure: names in, names out.
 *
 * Age comes from the UTC stamp in the backup's name (the time the backup was taken), not from
 * the file's mtime, which a copy or a restore of the volume can change. The backup just made is
 * never removed, whatever the policy (also with `--keep-days 0`).
 */
import { backupStampTime } from '../remote/layout.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface RetentionPolicy {
  /** Keep at most this many backups, the protected one included (>= 1). */
  keepCount?: number;
  /** Remove backups taken more than this many days ago (may be fractional, >= 0). */
  keepDays?: number;
}

export interface BackupRemoval {
  name: string;
  /** Which rule removes it: beyond the count, or too old (the count is checked first). */
  reason: 'count' | 'age';
}

/**
 * `newestFirst`: the backup names of one db dir, newest first (sortBackupsNewestFirst).
 * `protect`: the backup just made; always kept and counted as the first one.
 */
export function selectBackupsToRemove(newestFirst: readonly string[], protect: string, policy: RetentionPolicy, now = Date.now()): BackupRemoval[] {
  const removals: BackupRemoval[] = [];
  const others = newestFirst.filter((n) => n !== protect);
  others.forEach((name, i) => {
    if (policy.keepCount !== undefined && i + 1 >= policy.keepCount) {
      removals.push({ name, reason: 'count' });
      return;
    }
    const taken = backupStampTime(name);
    if (policy.keepDays !== undefined && taken !== undefined && now - taken > policy.keepDays * DAY_MS) removals.push({ name, reason: 'age' });
  });
  return removals;
}
