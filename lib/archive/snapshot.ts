import fs from 'node:fs/promises';
import type { Stats } from 'node:fs';
import path from 'node:path';
import { UserError } from '../common/errors.ts';

export interface SnapshotResult {
  dir: string;
  /** './rel' paths of regular files, sorted by byte order. */
  files: { path: string; size: number }[];
  bytes: number;
  attempts: number;
}

export interface SnapshotOptions {
  /** How many copies to try before giving up on a source that keeps changing (default 3). */
  maxAttempts?: number;
  signal?: AbortSignal;
}

/** Files whose non-empty presence means SQLite is in the middle of a write (rollback journal / WAL). */
const BUSY_FILES = ['chroma.sqlite3-journal', 'chroma.sqlite3-wal'];

/** Byte-order (UTF-8) comparison, so the order matches what `LC_ALL=C sort` and tar listings give. */
export function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export interface TreeEntry {
  /** './rel' ('.' for the root). */
  rel: string;
  abs: string;
  kind: 'dir' | 'file';
  stat: Stats;
}

/**
 * Every directory and regular file under `root` (the root itself first as '.'), depth first,
 * siblings in byte order, using lstat. Symlinks and special files are refused with a UserError.
 */
export async function walkTree(root: string, signal?: AbortSignal): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  const rootStat = await fs.lstat(root);
  out.push({ rel: '.', abs: root, kind: 'dir', stat: rootStat });
  const visit = async (absDir: string, relDir: string): Promise<void> => {
    signal?.throwIfAborted();
    const names = (await fs.readdir(absDir)).sort(byteOrder);
    for (const name of names) {
      const abs = path.join(absDir, name);
      const rel = `${relDir}/${name}`;
      let st: Stats;
      try {
        st = await fs.lstat(abs);
      } catch (e) {
        // Deleted between readdir and lstat: the caller's fingerprint comparison catches it.
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e;
      }
      if (st.isSymbolicLink()) {
        throw new UserError(`${abs} is a symbolic link: chroma-ferry copies only regular files and directories; replace the link with the file it points to`);
      }
      if (st.isDirectory()) {
        out.push({ rel, abs, kind: 'dir', stat: st });
        await visit(abs, rel);
      } else if (st.isFile()) {
        out.push({ rel, abs, kind: 'file', stat: st });
      } else {
        throw new UserError(`${abs} is not a regular file or directory (socket, FIFO or device): remove it from the persist directory`);
      }
    }
  };
  await visit(root, '.');
  return out;
}

/** Relative path, type, size, mtime and inode of every entry: any write in the tree changes it. */
function fingerprint(entries: TreeEntry[]): string {
  return entries
    .map((e) => `${e.rel}\0${e.kind}\0${e.kind === 'file' ? e.stat.size : 0}\0${e.stat.mtimeMs}\0${e.stat.ino}\0${e.stat.mode}`)
    .join('\n');
}

async function checkNoOpenTransaction(sourceDir: string): Promise<void> {
  for (const name of BUSY_FILES) {
    const p = path.join(sourceDir, name);
    let size: number;
    try {
      size = (await fs.stat(p)).size;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    if (size > 0) {
      throw new UserError(
        `${p} is not empty: SQLite has an open write transaction (or un-checkpointed WAL), so a copy would be torn; stop the Chroma server using ${sourceDir} (or wait until it is idle) and retry`,
      );
    }
  }
}

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

async function prepareDest(sourceDir: string, destDir: string): Promise<void> {
  if (isInside(destDir, sourceDir)) {
    throw new UserError(`snapshot destination ${destDir} is inside the source ${sourceDir}: choose a work directory outside the persist directory`);
  }
  if (isInside(sourceDir, destDir)) {
    throw new UserError(`snapshot destination ${destDir} contains the source ${sourceDir}: choose a separate work directory`);
  }
  try {
    const st = await fs.stat(destDir);
    if (!st.isDirectory()) throw new UserError(`snapshot destination ${destDir} exists and is not a directory: remove it or choose another path`);
    const names = await fs.readdir(destDir);
    if (names.length > 0) throw new UserError(`snapshot destination ${destDir} is not empty: remove it or choose another path`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    await fs.mkdir(destDir, { recursive: true });
  }
}

/** Remove everything inside destDir (not destDir itself). */
async function emptyDir(dir: string): Promise<void> {
  for (const name of await fs.readdir(dir)) {
    await fs.rm(path.join(dir, name), { recursive: true, force: true });
  }
}

async function copyTree(entries: TreeEntry[], destDir: string, signal?: AbortSignal): Promise<void> {
  // Directories first (already in pre-order), then files; directory modes and mtimes are applied last,
  // deepest first, because creating files inside a directory bumps its mtime.
  for (const e of entries) {
    if (e.kind !== 'dir' || e.rel === '.') continue;
    // 0o700 while copying so a read-only source directory does not stop us writing into the copy.
    await fs.mkdir(path.join(destDir, e.rel), { mode: 0o700 });
  }
  for (const e of entries) {
    if (e.kind !== 'file') continue;
    signal?.throwIfAborted();
    const to = path.join(destDir, e.rel);
    await fs.copyFile(e.abs, to);
    await fs.chmod(to, e.stat.mode & 0o7777);
    await fs.utimes(to, e.stat.atime, e.stat.mtime);
  }
  const dirs = entries.filter((e) => e.kind === 'dir').reverse();
  for (const d of dirs) {
    const to = path.join(destDir, d.rel);
    await fs.chmod(to, d.stat.mode & 0o7777);
    await fs.utimes(to, d.stat.atime, d.stat.mtime);
  }
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = () => { clearTimeout(t); reject(signal?.reason); };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/**
 * Copy `sourceDir` (a Chroma persist dir, possibly being served) into `destDir` consistently:
 * the tree is fingerprinted (path, size, mtime, inode) before and after the copy and the copy is
 * retried while anything changed. Nothing is ever written inside sourceDir.
 */
export async function snapshotSource(
  sourceDir: string,
  destDir: string,
  opts: SnapshotOptions = {},
): Promise<SnapshotResult> {
  const maxAttempts = Math.max(1, opts.maxAttempts ?? 3);
  const { signal } = opts;
  const src = path.resolve(sourceDir);
  const dest = path.resolve(destDir);

  let srcStat: Stats;
  try {
    srcStat = await fs.lstat(src);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new UserError(`source ${sourceDir} does not exist: pass the Chroma persist directory (the --path of \`chroma run\`)`);
    throw e;
  }
  if (srcStat.isSymbolicLink()) throw new UserError(`source ${sourceDir} is a symbolic link: pass the real directory path (e.g. $(realpath ${sourceDir}))`);
  if (!srcStat.isDirectory()) throw new UserError(`source ${sourceDir} is not a directory: pass the Chroma persist directory`);

  await prepareDest(src, dest);

  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    signal?.throwIfAborted();
    await checkNoOpenTransaction(src);
    const before = await walkTree(src, signal);
    try {
      await copyTree(before, dest, signal);
    } catch (e) {
      await emptyDir(dest).catch(() => {});
      const code = (e as NodeJS.ErrnoException).code;
      // A file vanished or was replaced mid-copy: that is a concurrent writer, retry like a changed fingerprint.
      if ((code === 'ENOENT' || code === 'ENOTDIR') && !signal?.aborted && attempt < maxAttempts) {
        await sleep(100 * attempt, signal);
        continue;
      }
      if ((code === 'ENOENT' || code === 'ENOTDIR') && !signal?.aborted) break;
      throw e;
    }
    await checkNoOpenTransaction(src).catch(async (e) => { await emptyDir(dest).catch(() => {}); throw e; });
    const after = await walkTree(src, signal);
    if (fingerprint(before) === fingerprint(after)) {
      const files = before
        .filter((e) => e.kind === 'file')
        .map((e) => ({ path: e.rel, size: e.stat.size }));
      return { dir: dest, files, bytes: files.reduce((n, f) => n + f.size, 0), attempts: attempt };
    }
    await emptyDir(dest);
    if (attempt < maxAttempts) await sleep(100 * attempt, signal);
  }
  throw new UserError(
    `source ${sourceDir} changed while it was being copied (is a Chroma server writing to it?): stop the writer or retry when it is idle`,
  );
}
