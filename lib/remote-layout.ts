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

/** Backup names of this db dir, newest first. */
export function sortBackupsNewestFirst(name: string, files: string[]): string[] {
  const re = new RegExp(`^${escapeRe(name)}-(\\d{8}T\\d{6}Z)\\.tar\\.gz$`);
  return files.filter((f) => re.test(f)).sort().reverse();
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
