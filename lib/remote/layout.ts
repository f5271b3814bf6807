import path from 'node:path';

/** Where everything lives on the volume. Pure path arithmetic: no I/O. */
export interface RemoteLayout {
  volume: string;
  name: string;
  /** VOLUME/NAME: the directory Chroma serves. */
  live: string;
  /** VOLUME/NAME.old: the previous live dir, kept after a swap. */
  old: string;
  /** VOLUME/NAME.new: extracted and checked, waiting for the swap. */
  next: string;
  /** VOLUME/.ferry: the tool's own state. */
  ferry: string;
  lock: string;
  backups: string;
  incomingRoot: string;
  trashRoot: string;
}

export function remoteLayout(volumePath: string, name: string): RemoteLayout {
  const j = path.posix.join;
  const ferry = j(volumePath, '.ferry');
  return {
    volume: volumePath,
    name,
    live: j(volumePath, name),
    old: j(volumePath, `${name}.old`),
    next: j(volumePath, `${name}.new`),
    ferry,
    lock: j(ferry, 'lock'),
    backups: j(ferry, 'backups'),
    incomingRoot: j(ferry, 'incoming'),
    trashRoot: j(ferry, 'trash'),
  };
}

export function incomingDir(l: RemoteLayout, deployId: string): string {
  return path.posix.join(l.incomingRoot, deployId);
}

export function trashDir(l: RemoteLayout, deployId: string): string {
  return path.posix.join(l.trashRoot, deployId);
}

/** VOLUME/.ferry/manifest-NAME.json: collections and counts of the data the last deploy put live. */
export function deployedManifestFile(l: RemoteLayout): string {
  return path.posix.join(l.ferry, `manifest-${l.name}.json`);
}

/** UTC stamp used in backup and failed-dir names: 20261124T161754Z (sorts by time). */
export function utcStamp(d = new Date()): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

export function backupName(name: string, stamp: string): string {
  return `${name}-${stamp}.tar.gz`;
}

/** VOLUME/.ferry/backups/FILE. */
export function backupPath(l: RemoteLayout, file: string): string {
  return path.posix.join(l.backups, file);
}

/** Backup names of this db dir, newest first. */
export function sortBackupsNewestFirst(name: string, files: string[]): string[] {
  return files.filter((f) => isBackupOf(name, f)).sort().reverse();
}

/** True when `file` is a backup archive name of db dir `name` (`NAME-<UTC stamp>.tar.gz`): a plain file name, no path. */
export function isBackupOf(name: string, file: string): boolean {
  return new RegExp(`^${escapeRe(name)}-\\d{8}T\\d{6}Z\\.tar\\.gz$`).test(file);
}

/** The time in a backup name's UTC stamp (ms since the epoch), or undefined when the name has none. */
export function backupStampTime(file: string): number | undefined {
  const m = /-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z\.tar\.gz$/.exec(file);
  if (!m) return undefined;
  const t = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  return Number.isNaN(t) ? undefined : t;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
