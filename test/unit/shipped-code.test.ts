/**
 * What ships (scripts/, lib/, runbooks/, compiled into dist/) never imports test-only code
 * (testkit/, test/, bench/, demo/), and lib/ is grouped by concern: folders only, no loose files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const SHIPPED = ['scripts', 'lib', 'runbooks'];

function sources(dir: string): string[] {
  return fs
    .readdirSync(path.join(REPO, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /\.(ts|js)$/.test(e.name))
    .map((e) => path.join(e.parentPath, e.name));
}

test('shipped code imports only shipped code and packages', () => {
  const offenders: string[] = [];
  for (const dir of SHIPPED) {
    for (const file of sources(dir)) {
      const text = fs.readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:from\s+|import\(\s*|new URL\(\s*)(['"])(\.{1,2}\/[^'"]+)\1/g)) {
        const target = path.relative(REPO, path.resolve(path.dirname(file), m[2]!));
        // lib/engine/plan.ts also names bin/ as seen from dist/lib/engine/ (one level deeper).
        if (target === path.join('..', 'bin', 'chroma-ferry.js')) continue;
        const top = target.split(path.sep)[0]!;
        if (!SHIPPED.includes(top) && top !== 'bin' && top !== 'package.json') offenders.push(`${path.relative(REPO, file)} -> ${target}`);
      }
    }
  }
  assert.deepEqual(offenders, []);
});

test('the build compiles only shipped folders', () => {
  const build = JSON.parse(fs.readFileSync(path.join(REPO, 'tsconfig.build.json'), 'utf8')) as { include: string[] };
  assert.deepEqual([...build.include].sort(), [...SHIPPED].sort());
});

test('lib/ holds folders named after concerns, no loose modules', () => {
  const loose = fs.readdirSync(path.join(REPO, 'lib'), { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name);
  assert.deepEqual(loose, []);
});
