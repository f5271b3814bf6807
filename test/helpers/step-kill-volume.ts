/**
 * What the step-kill tests check after every kill and every command that follows it, on a volume
 * on this machine (a `local:` target, or the dir an ssh target's volume is): NAME is there and
 * holds the old or the new data, and the last verified data (before any verify, the data that was
 * live before the first deploy) is still somewhere on the volume. Also: running a printed hint
 * exactly as printed (`sh -c`, with `chroma-ferry` on PATH).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { listFiles } from '../../testkit/tree-digest.ts';
import { CLI, type CliResult } from './deploy-env.ts';

const DATA_ID_FILE = '.ferry-data-id';

/** The data a dir holds, told apart by its file list. */
export type Which = 'old' | 'new';

export interface VolumeWatch {
  /** NAME holds the old or the new data and the last verified data is on the volume; returns what NAME holds. */
  assertSafe(when: string): Promise<Which>;
}

async function idOf(dir: string): Promise<string | undefined> {
  return (await fs.readFile(path.join(dir, DATA_ID_FILE), 'utf8').catch(() => undefined))?.trim();
}

/** Every data dir the tool may have put anywhere on the volume: NAME*, and the swap trash. */
async function dataDirs(volume: string, name: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(volume, { withFileTypes: true })) {
    if (e.isDirectory() && (e.name === name || e.name.startsWith(`${name}.`))) out.push(path.join(volume, e.name));
  }
  const trash = path.join(volume, '.ferry', 'trash');
  for (const run of await fs.readdir(trash).catch(() => [] as string[])) {
    for (const d of await fs.readdir(path.join(trash, run)).catch(() => [] as string[])) out.push(path.join(trash, run, d));
  }
  const restores = await fs.readdir(path.join(volume, '.ferry')).catch(() => [] as string[]);
  for (const r of restores.filter((n) => n.startsWith('restore-'))) out.push(path.join(volume, '.ferry', r, name));
  return out;
}

/**
 * `oldFiles` / `newFiles`: the file lists of the data live before the first deploy and of the
 * source. Before anything was verified, the old data is the last good data.
 */
export function watchVolume(volume: string, name: string, oldFiles: string[], newFiles: string[]): VolumeWatch {
  const which = (files: string[]): Which | undefined =>
    JSON.stringify(files) === JSON.stringify(oldFiles) ? 'old' : JSON.stringify(files) === JSON.stringify(newFiles) ? 'new' : undefined;
  return {
    async assertSafe(when) {
      const live = path.join(volume, name);
      const st = await fs.lstat(live).catch(() => null);
      assert.ok(st?.isDirectory(), `${when}: ${name} is missing (volume: ${(await fs.readdir(volume)).join(', ')})`);
      const holds = which(await listFiles(live));
      assert.ok(holds, `${when}: ${name} holds neither the old nor the new data`);
      const verified = (await fs.readFile(path.join(volume, '.ferry', `verified-${name}`), 'utf8').catch(() => ''))?.trim();
      const dirs = await dataDirs(volume, name);
      if (verified) {
        let found: string | undefined;
        for (const d of dirs) if ((await idOf(d)) === verified) found = d;
        assert.ok(found, `${when}: the last verified data (${verified}) is gone from the volume`);
        assert.ok(which(await listFiles(found)), `${when}: ${found} (the verified data) holds neither the old nor the new data`);
      } else {
        let kept = false;
        for (const d of dirs) if (which(await listFiles(d)) === 'old') kept = true;
        assert.ok(kept, `${when}: the data live before the deploy is gone from the volume (dirs: ${dirs.join(', ')})`);
      }
      return holds!;
    },
  };
}

/** A dir with `chroma-ferry` in it, as a user who copies a printed command has it on PATH. */
export async function chromaFerryShim(): Promise<{ dir: string; dispose(): Promise<void> }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-shim-'));
  await fs.writeFile(path.join(dir, 'chroma-ferry'), `#!/bin/sh\nexec '${process.execPath}' '${CLI}' "$@"\n`, { mode: 0o755 });
  return { dir, dispose: () => fs.rm(dir, { recursive: true, force: true }) };
}

/** The command `re` captures from `text`, run exactly as printed. */
export async function runPrinted(text: string, re: RegExp, env: Record<string, string>): Promise<CliResult & { hint: string }> {
  const hint = re.exec(text)?.[1];
  assert.ok(hint, `no command matching ${re} in: ${text}`);
  const r = await execa('sh', ['-c', hint], { reject: false, stdin: 'ignore', env, timeout: 240_000 });
  const out: CliResult & { hint: string } = { hint, code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  try { out.json = JSON.parse(out.stdout); } catch { /* not JSON */ }
  return out;
}

/** A refusal's one line on stderr. */
export function oneLine(r: CliResult): string {
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected on stderr:\n${r.stderr}\n${r.stdout}`);
  return lines[0]!;
}

/** Hints refusals print, as patterns capturing the whole command. */
export const HINTS = {
  /** "it stopped before STEP: continue it with: chroma-ferry deploy ... --from STEP; or, ..." */
  continueFrom: /continue it with: (chroma-ferry deploy .*?); or,/,
  /** "... clear the lock with: chroma-ferry unlock ..." (or "clear it with:") */
  unlock: /clear (?:the lock|it) with: (chroma-ferry unlock .*?)(?:$| \()/,
  /** "finish it with: chroma-ferry deploy ... --from restart; or ..." */
  finish: /finish it with: (chroma-ferry deploy .*? --from restart);/,
  /** "put the previous data back with: chroma-ferry rollback ..." */
  rollback: /put the (?:previous|last verified) data back with: (chroma-ferry rollback .*)$/,
} as const;
