import fs from 'node:fs/promises';

/** Write JSON so that readers see the old or the new file, never half of one (temp file + rename). */
export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await fs.writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`);
  await fs.rename(tmp, file);
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
