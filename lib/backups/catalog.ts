/**
 * The remote backup archives of a db dir (VOLUME/.ferry/backups/NAME-<UTC stamp>.tar.gz, each
 * with a NAME...tar.gz.sha256 written when it was made): listing, and choosing one by a name the
 * user typed. A typed name is only ever compared with listed names; it never reaches a path
 * unless it is exactly a backup name of this db dir (a plain file name, no "/" or "..").
 */
import { UserError } from '../common/errors.ts';
import type { RemoteHost } from '../hosts/remote-host.ts';
import { backupStampTime, isBackupOf, sortBackupsNewestFirst, type RemoteLayout } from '../remote/layout.ts';
import { listBackupsScript } from '../remote/scripts.ts';
import { requireVolume } from '../volume/check.ts';

export interface BackupEntry {
  name: string;
  bytes: number;
  /** Recorded when the backup was made ("-" when its .sha256 file is missing). */
  sha256: string;
  /** ISO time from the name's UTC stamp. */
  date: string;
}

/** The word that picks the newest backup. */
export const LATEST = 'latest';

/**
 * The remote backups of this db dir, newest first. The listing is NUL-separated records; a name
 * is taken only when it is exactly a backup name of this db dir (spaces allowed, no path), and a
 * sha256 only when it is 64 hex digits.
 */
export async function listBackups(host: RemoteHost, layout: RemoteLayout, signal?: AbortSignal): Promise<BackupEntry[]> {
  const out = (await host.run(listBackupsScript(layout), { signal })).stdout;
  const byName = new Map<string, BackupEntry>();
  for (const record of out.split('\0')) {
    const m = /^backup (\d+) (\S*) (.+)$/s.exec(record.replace(/^\n+/, ''));
    if (!m) continue;
    const [, bytes, sha256, name] = m as unknown as [string, string, string, string];
    if (!isBackupOf(layout.name, name)) continue;
    const t = backupStampTime(name);
    byName.set(name, {
      name, bytes: Number(bytes), sha256: /^[0-9a-f]{64}$/.test(sha256) ? sha256 : '-',
      date: t === undefined ? '' : new Date(t).toISOString().replace('.000Z', 'Z'),
    });
  }
  return sortBackupsNewestFirst(layout.name, [...byName.keys()]).map((n) => byName.get(n)!);
}

/**
 * `backups`: the list of a db dir on a volume that exists. A volume that does not exist, or a db
 * dir with neither a live dir nor a backup (a mistyped --db-dir), is refused in one line: an
 * empty list is only ever the truth.
 */
export async function listVolumeBackups(host: RemoteHost, layout: RemoteLayout, signal?: AbortSignal): Promise<BackupEntry[]> {
  const { live } = await requireVolume(host, layout, signal);
  const list = await listBackups(host, layout, signal);
  if (!live && list.length === 0) {
    throw new UserError(`no Chroma dir ${layout.live} on ${host.label} and no backups of ${layout.name}; check --db-dir and --volume`);
  }
  return list;
}

/** `latest`, or a backup file name of this db dir; anything else (paths, `..`, other names) is refused in one line. */
export function parseBackupNameArg(layout: RemoteLayout, raw: string): string {
  if (raw === LATEST || isBackupOf(layout.name, raw)) return raw;
  throw new UserError(
    `backup name ${JSON.stringify(raw)}: not a backup of ${layout.name}; use "${LATEST}" or a file name listed by chroma-ferry backups (${layout.name}-YYYYMMDDTHHMMSSZ.tar.gz)`,
  );
}

/** The backup `latest` or a listed name stands for; refused (UserError) when there is none, or no such volume. */
export async function findBackup(host: RemoteHost, layout: RemoteLayout, raw: string, signal?: AbortSignal): Promise<BackupEntry> {
  const name = parseBackupNameArg(layout, raw);
  const backups = await listVolumeBackups(host, layout, signal);
  const chosen = name === LATEST ? backups[0] : backups.find((b) => b.name === name);
  if (chosen) return chosen;
  throw new UserError(name === LATEST
    ? `no backups of ${layout.name} in ${layout.backups}`
    : `no backup named ${name} in ${layout.backups}; chroma-ferry backups lists them`);
}
