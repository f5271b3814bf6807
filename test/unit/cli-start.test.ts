/**
 * The CLI's start: what it loads before its first remote command is time every run waits for (a
 * deploy opens its ssh connection only once its modules are loaded). execa (~150 modules, ~130 ms
 * here) is loaded on first use, not at start.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/chroma-ferry.js', import.meta.url));

/** Every module specifier the CLI resolves while running `args`, via a resolve hook registered first. */
function resolvedBy(args: string[]): { specifiers: string[]; stderr: string; status: number | null } {
  const hook = `export async function resolve(s, c, next) { process.stderr.write('RESOLVED ' + s + '\\n'); return next(s, c); }`;
  const register = `import { register } from 'node:module'; register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));`;
  const r = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(register)}`, BIN, ...args], { encoding: 'utf8', env: { ...process.env, CI: 'true' } });
  const lines = r.stderr.split('\n');
  return {
    specifiers: lines.filter((l) => l.startsWith('RESOLVED ')).map((l) => l.slice('RESOLVED '.length)),
    stderr: lines.filter((l) => l && !l.startsWith('RESOLVED ')).join('\n'),
    status: r.status,
  };
}

test('a deploy loads its runbook without loading execa', () => {
  const source = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-cli-start-'));
  try {
    // A source without chroma.sqlite3: refused by the deploy's own check, after its modules loaded.
    const r = resolvedBy(['deploy', '--source', source, '--target', 'ssh://root@127.0.0.1:1', '--volume', '/data',
      '--restart-cmd', 'true', '--health-url', 'http://127.0.0.1:1', '--yes']);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /no chroma\.sqlite3 inside/);
    assert.ok(r.specifiers.some((s) => /runbooks\/deploy\/index\.(ts|js)$/.test(s)), `the deploy runbook was loaded: ${r.specifiers.length} modules`);
    assert.deepEqual(r.specifiers.filter((s) => s === 'execa' || s.startsWith('execa/')), []);
  } finally {
    fs.rmSync(source, { recursive: true, force: true });
  }
});
