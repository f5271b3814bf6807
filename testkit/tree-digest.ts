import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileSha256 } from '../lib/archive/file-sha256.ts';

/** Fingerprints of directory trees: equal digests ⇔ byte-identical trees (names, types, modes, contents). */

interface Entry {
  rel: string; // "./a/b"
  abs: string;
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** The data id chroma-ferry stamps into each data dir it moves (lib/volume/data-id.ts): not part of the data. */
const DATA_ID_FILE = '.ferry-data-id';

/** Every entry below `dir` (not `dir` itself), depth first, without following symlinks; data id files left out. */
async function walk(dir: string): Promise<Entry[]> {
  const out: Entry[] = [];
  const visit = async (abs: string, rel: string): Promise<void> => {
    const names = await fs.readdir(abs);
    for (const name of names) {
      if (name === DATA_ID_FILE) continue;
      const e = { abs: path.join(abs, name), rel: `${rel}/${name}` };
      out.push(e);
      const st = await fs.lstat(e.abs);
      if (st.isDirectory()) await visit(e.abs, e.rel);
    }
  };
  await visit(dir, '.');
  return out.sort((a, b) => byteOrder(a.rel, b.rel));
}

export { fileSha256 };

/**
 * sha256 over the byte-sorted list of every file, directory and symlink below `dir`, each with its
 * type, permission bits, size and content sha256 (symlinks: their target). The root directory's own
 * mode is not part of the digest. Files are streamed, never loaded whole.
 */
export async function digestTree(dir: string): Promise<string> {
  const total = createHash('sha256');
  total.update('tree-digest v1\n');
  for (const e of await walk(dir)) {
    const st = await fs.lstat(e.abs);
    const mode = (st.mode & 0o7777).toString(8);
    let fields: string[];
    if (st.isFile()) fields = ['f', mode, String(st.size), await fileSha256(e.abs)];
    else if (st.isDirectory()) fields = ['d', mode, '0', ''];
    else if (st.isSymbolicLink()) {
      const target = await fs.readlink(e.abs);
      fields = ['l', mode, String(Buffer.byteLength(target)), createHash('sha256').update(target).digest('hex')];
    } else fields = ['o', mode, '0', ''];
    total.update(`${e.rel}\0${fields.join('\0')}\n`);
  }
  return total.digest('hex');
}

/** Regular files below `dir` as sorted `./rel/path` strings. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await walk(dir)) {
    if ((await fs.lstat(e.abs)).isFile()) out.push(e.rel);
  }
  return out;
}
