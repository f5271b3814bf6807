/**
 * The repository stands alone: a fresh clone with nothing beside it passes `npm test`. No tracked
 * file names the reference material that lived next to the repository while it was written (the
 * sibling directory of contracts): everything the tests need is in test/fixtures/.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { REPO } from './helpers/deploy-env.ts';

// Built from pieces so that this file does not contain them.
const OUTSIDE = [['..', 'shared'].join('/'), ['shared', 'contracts'].join('/')];

/** Tracked files and the ones a commit would add (untracked, not ignored). */
async function trackedFiles(): Promise<string[]> {
  const r = await execa('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: REPO });
  return r.stdout.split('\0').filter((f) => f && f !== 'node_modules');
}

describe('the repository stands alone', () => {
  it('no tracked file refers to the reference material outside the repository', async () => {
    const files = await trackedFiles();
    assert.ok(files.includes('package.json') && files.includes('test/repo-self-contained.test.ts'), 'git ls-files lists the repository');
    const hits: string[] = [];
    for (const f of files) {
      const text = await fs.readFile(path.join(REPO, f), 'utf8').catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? '' : Promise.reject(e)));
      text.split('\n').forEach((line, i) => {
        if (OUTSIDE.some((p) => line.includes(p))) hits.push(`${f}:${i + 1}: ${line.trim()}`);
      });
    }
    assert.deepEqual(hits, [], 'put what the tests need under test/fixtures/ and describe where it came from without a path');
  });

  it('a copy of the tracked files alone in a directory runs the Qdrant stand-in tests', async () => {
    // As a fresh clone: nothing beside it (node_modules linked, as `npm ci` would install it).
    const top = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-alone-'));
    try {
      const copy = path.join(top, 'chroma-ferry');
      for (const f of await trackedFiles()) {
        await fs.mkdir(path.dirname(path.join(copy, f)), { recursive: true });
        await fs.copyFile(path.join(REPO, f), path.join(copy, f)).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)));
      }
      await fs.symlink(path.join(REPO, 'node_modules'), path.join(copy, 'node_modules'));
      assert.deepEqual(await fs.readdir(top), ['chroma-ferry']);
      const r = await execa(process.execPath, ['--import', 'tsx', '--test', 'test/qdrant-contract.test.ts'], { cwd: copy, reject: false, env: { NODE_TEST_CONTEXT: undefined } }); // its own run, not a subtest of this one
      assert.equal(r.exitCode, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /# pass 2\b/);
    } finally {
      await fs.rm(top, { recursive: true, force: true });
    }
  });
});
