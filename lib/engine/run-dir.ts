/**
 * The local run directory of a deploy: `<work root>/chroma-ferry-<run id>`, the one place on this
 * machine where the tool writes its work files (snapshot, chunks, manifest) and the only thing it
 * ever removes there. The work root is `--work-dir` (created if missing, never removed) or the
 * system temp dir. A path recorded in a runbook state is used only when it resolves, symlinks
 * followed, inside the run dir of that run id.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../common/errors.ts';

const RUN_ID = /^[0-9a-f]{12}$/;

export function newRunId(): string {
  return crypto.randomBytes(6).toString('hex');
}

export function isRunId(id: unknown): id is string {
  return typeof id === 'string' && RUN_ID.test(id);
}

/** `child` is `parent` or lies inside it (both absolute, resolved). */
export function isWithin(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

/**
 * The work root for `--work-dir RAW` (undefined: the system temp dir), symlinks resolved as far as
 * it exists. Refuses, before anything is written: an existing non-directory, and a root that is,
 * contains or lies inside the source (a temp dir holding the source is fine: only the run dir in
 * it is ever removed).
 */
export function parseWorkRoot(raw: string | undefined, source: string): string {
  const src = fs.realpathSync(source);
  if (raw === undefined) {
    const tmp = fs.realpathSync(os.tmpdir());
    if (isWithin(tmp, src)) throw new UserError(`the system temp dir ${tmp} lies inside --source ${source}; pass --work-dir outside the source`);
    return tmp;
  }
  const flag = `--work-dir ${raw}`;
  const abs = path.resolve(raw);
  const missing: string[] = [];
  let cur = abs;
  for (;;) {
    const st = statOrNull(cur, fs.statSync);
    if (st) {
      if (!st.isDirectory()) {
        throw new UserError(cur === abs ? `${flag}: exists and is not a directory; pass a directory (it is created if missing)` : `${flag}: ${cur} is not a directory; pass a directory path`);
      }
      break;
    }
    if (statOrNull(cur, fs.lstatSync)) throw new UserError(`${flag}: ${cur} is a symlink to nothing; pass a directory`);
    missing.unshift(path.basename(cur));
    cur = path.dirname(cur); // the root directory always exists
  }
  const root = path.join(fs.realpathSync(cur), ...missing);
  const fix = 'pass a directory outside the source (the deploy works in a chroma-ferry-<run id> dir it makes there)';
  if (root === src) throw new UserError(`${flag}: is the --source dir; ${fix}`);
  if (isWithin(root, src)) throw new UserError(`${flag}: lies inside --source ${source}; ${fix}`);
  if (isWithin(src, root)) throw new UserError(`${flag}: contains --source ${source}; ${fix}`);
  return root;
}

/** The run dir of `runId` under `root` (a work root from parseWorkRoot). */
export function runDirOf(root: string, runId: string): string {
  if (!isRunId(runId)) throw new Error(`not a run id: ${JSON.stringify(runId)}`);
  return path.join(root, `chroma-ferry-${runId}`);
}

/**
 * Makes the work root (if missing) and the run dir (a resumed run's may exist) and checks the run
 * dir is a real directory of this user, not a symlink placed there. Refuses a source inside it.
 */
export async function openRunDir(runDir: string, source: string): Promise<void> {
  if (isWithin(fs.realpathSync(source), runDir)) throw new UserError(`--source ${source} lies inside the work dir ${runDir}, which the deploy removes; copy it elsewhere first`);
  await fsp.mkdir(path.dirname(runDir), { recursive: true });
  await fsp.mkdir(runDir, { recursive: true, mode: 0o700 });
  const st = await fsp.lstat(runDir);
  if (!st.isDirectory() || (process.getuid && st.uid !== process.getuid()) || (await fsp.realpath(runDir)) !== runDir) {
    throw new UserError(`the work dir ${runDir} is not a directory of this user (a symlink or another user's); remove it or pass another --work-dir`);
  }
}

/** Removes a run dir: only a real directory of this user (never what a symlink points to), never one holding the source. */
export async function removeRunDir(runDir: string, source: string): Promise<void> {
  const st = await fsp.lstat(runDir).catch(() => null);
  if (!st?.isDirectory() || (process.getuid && st.uid !== process.getuid()) || isWithin(fs.realpathSync(source), runDir)) return;
  await fsp.rm(runDir, { recursive: true, force: true });
}

/**
 * A local path recorded in a runbook state, accepted only when it resolves (symlinks followed)
 * inside `runDir`: its real path, else a reason it is not used.
 */
export async function pathInRunDir(recorded: unknown, runDir: string): Promise<{ path: string } | { refused: string }> {
  if (typeof recorded !== 'string' || !path.isAbsolute(recorded)) return { refused: 'no path of it is recorded' };
  const real = await fsp.realpath(recorded).catch(() => null);
  if (!real) return { refused: `${recorded} is gone` };
  const realRunDir = await fsp.realpath(runDir).catch(() => null);
  if (realRunDir !== runDir || real === runDir || !isWithin(real, runDir)) return { refused: `it was kept in ${recorded}, outside it` };
  return { path: real };
}

function statOrNull(p: string, stat: (p: string) => fs.Stats): fs.Stats | null {
  try {
    return stat(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw e;
  }
}
