/**
 * `--app-health-url` on the command line: one of it or --health-url (both, or neither for verify,
 * is one line and exit 2, before anything is contacted), the latency flags refused with it, and
 * `deploy --plan` printing the app's three checks. No server is started and no remote is touched.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli, sampleDbCopy } from './helpers/deploy-env.ts';
import { digestTree } from '../testkit/tree-digest.ts';

let root: string;
let source: string;
let target: string;
before(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-app-flags-'));
  source = path.join(root, 'source');
  await sampleDbCopy(source, [{ name: 'books', count: 5, dim: 4, space: 'l2' }], 2);
  target = path.join(root, 'target');
  await fs.mkdir(path.join(target, 'data', 'chroma_db'), { recursive: true });
  await fs.writeFile(path.join(target, 'data', 'chroma_db', 'chroma.sqlite3'), 'old');
});
after(() => fs.rm(root, { recursive: true, force: true }));

const APP = 'http://127.0.0.1:9/health';
const deploy = (...extra: string[]) => ['deploy', '--source', source, '--target', `local:${target}`, '--volume', '/data', '--restart-cmd', 'true', '--yes', ...extra];

/** Refused: exit 2, exactly one line on stderr, nothing on stdout, the target untouched. */
async function refused(args: string[], line: RegExp): Promise<void> {
  const before = await digestTree(target);
  const r = await runCli(args, { timeoutMs: 60_000 });
  assert.equal(r.code, 2, r.stderr + r.stdout);
  assert.match(r.stderr, line);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.equal(r.stdout, '');
  assert.equal(await digestTree(target), before, 'a refusal changed the target');
}

describe('--app-health-url flags', () => {
  it('deploy: with --health-url, with --no-verify, with --allow-server-down, with a query: refused in one line', async () => {
    await refused(deploy('--health-url', 'http://127.0.0.1:9', '--app-health-url', APP),
      /^chroma-ferry: --health-url and --app-health-url do not go together: give --health-url for a Chroma server, --app-health-url for an app that embeds Chroma$/);
    await refused(deploy('--app-health-url', APP, '--no-verify'), /^chroma-ferry: --no-verify and --app-health-url do not go together/);
    await refused(deploy('--app-health-url', APP, '--allow-server-down'), /^chroma-ferry: --allow-server-down applies to --health-url/);
    await refused(deploy('--app-health-url', 'http://127.0.0.1:9/health?key=sekrit-value'), /^chroma-ferry: --app-health-url http:\/\/127\.0\.0\.1:9\/health\?\.\.\.: a query or fragment is refused/);
  });

  it('verify: neither flag, both, latency flags with --app-health-url, --manifest without --target: refused in one line', async () => {
    await refused(['verify'], /^chroma-ferry: missing --health-url \(a Chroma server\) or --app-health-url \(an app that embeds Chroma\); see --help$/);
    await refused(['verify', '--health-url', 'http://127.0.0.1:9', '--app-health-url', APP], /^chroma-ferry: --health-url and --app-health-url do not go together/);
    await refused(['verify', '--app-health-url', APP, '--samples', '5'], /^chroma-ferry: --samples applies to --health-url \(query latency of a Chroma server\): drop it with --app-health-url$/);
    await refused(['verify', '--app-health-url', APP, '--max-latency-ms', '5'], /^chroma-ferry: --max-latency-ms applies to --health-url/);
    const manifest = path.join(root, 'm.json');
    await fs.writeFile(manifest, JSON.stringify({ collections: [] }));
    await refused(['verify', '--app-health-url', APP, '--manifest', manifest], /^chroma-ferry: --manifest needs --target with --app-health-url/);
  });

  it('rollback does not take it (its verify is a Chroma server\'s)', async () => {
    await refused(['rollback', '--target', `local:${target}`, '--app-health-url', APP, '--yes'], /unknown option '--app-health-url'/);
  });

  it('deploy --plan: the verify step lists the app\'s answer, the /proc probe of the new file and the count read on the remote', async () => {
    const r = await runCli(deploy('--app-health-url', APP, '--plan', '--json'), { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    const verify = r.json.steps.find((s: { name: string }) => s.name === 'verify');
    const whats = verify.commands.map((c: { what: string }) => c.what);
    assert.deepEqual(whats.slice(0, 3), [
      'the app answers 2xx',
      'find the processes that hold the file open',
      'count the collections of the live chroma.sqlite3 on the remote (python3 sqlite3, read-only)',
    ]);
    assert.match(verify.commands[0].command, /verify --app-health-url http:\/\/127\.0\.0\.1:9\/health --timeout 60s$/);
    assert.ok(verify.commands[2].command.includes(`${target}/data/chroma_db/chroma.sqlite3`), verify.commands[2].command);
  });
});
