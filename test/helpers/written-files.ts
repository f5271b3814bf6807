/**
 * What a run wrote, for the tests that check a secret is in no file: every file under `dir`
 * (recursively), read as text (latin1); none when `dir` does not exist.
 */
import fs from 'node:fs/promises';
import path from 'node:path';

export async function filesUnder(dir: string): Promise<{ file: string; text: string }[]> {
  const out: { file: string; text: string }[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (!e.isFile()) continue;
    const file = path.join(e.parentPath, e.name);
    out.push({ file, text: await fs.readFile(file, 'latin1') });
  }
  return out;
}
