import fs from 'node:fs/promises';
import path from 'node:path';
import { freeMib, neededMib, VolumeFullError, volumeFullLine } from '../common/volume-full.ts';

let sequence = 0;

/** `FILE.tmp.<pid>.<n>`: the temp name of a write of FILE by process `pid`. */
function tempName(file: string): string {
  return `${file}.tmp.${process.pid}.${sequence++}`;
}

/**
 * Write JSON so that readers see the old or the new file, never half of one (temp file + rename).
 * The temp file never stays behind: it is removed when the write or the rename fails, and temp
 * files of `file` left by a process that was killed (its pid no longer runs) are removed first.
 * A full filesystem says `volume full: N MiB free, needed M MiB (DIR)`.
 */
export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  const text = `${JSON.stringify(value, null, 2)}\n`;
  await removeStaleTemps(file);
  const tmp = tempName(file);
  try {
    await fs.writeFile(tmp, text);
    await fs.rename(tmp, file);
  } catch (e) {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    throw (await volumeFullError(e, path.dirname(file), Buffer.byteLength(text))) ?? e;
  }
}

/**
 * The one line for a write that failed because the filesystem is full (a VolumeFullError: the run
 * still ends with its summary); undefined for other failures.
 */
export async function volumeFullError(e: unknown, dir: string, neededBytes: number): Promise<VolumeFullError | undefined> {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return undefined;
  const st = await fs.statfs(dir).catch(() => undefined);
  return new VolumeFullError(volumeFullLine(st ? freeMib(st.bavail * st.bsize) : '?', neededMib(neededBytes), dir));
}

/**
 * Remove `FILE.tmp.<pid>[.<n>]` (and the older `FILE.<pid>.<ms>.tmp`) whose process is gone: what a
 * writer killed between its write and its rename left. Live writers' temp files are kept.
 */
async function removeStaleTemps(file: string): Promise<void> {
  const dir = path.dirname(file);
  const base = path.basename(file);
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(`${base}.`)) continue;
    const m = /^\.tmp\.(\d+)(?:\.\d+)?$/.exec(name.slice(base.length)) ?? /^\.(\d+)\.\d+\.tmp$/.exec(name.slice(base.length));
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && !isRunning(pid)) await fs.rm(path.join(dir, name), { force: true }).catch(() => undefined);
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Give a finished temp file its final name without ever replacing an existing file: a hard link
 * (fails if `dest` exists), then the temp name removed. Where hard links are not supported, a
 * rename after an existence check. Resolves false when `dest` already exists (nothing changed).
 */
export async function publishFileNoClobber(tmp: string, dest: string): Promise<boolean> {
  try {
    await fs.link(tmp, dest);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EMLINK') throw e;
    if (await fs.access(dest).then(() => true, () => false)) return false;
    await fs.rename(tmp, dest);
    return true;
  }
  await fs.rm(tmp, { force: true });
  return true;
}
