/**
 * Credentials never travel in a URL: `user:pass@` in --health-url, --source-url, --target-url is
 * refused before anything is done (exit 2, one line, the password in no output and no file). The
 * supported way is real: a token from CHROMA_API_KEY / CHROMA_SOURCE_API_KEY /
 * CHROMA_TARGET_API_KEY reaches token-checking Chroma servers (a proxy in front of real ones)
 * as the x-chroma-token header, for migrate, verify and a deploy's checks, and is never printed
 * or written.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromaClientFor } from '../lib/chroma/client.ts';
import { addRecords } from '../testkit/sample-db.ts';
import { startChromaServer, type ChromaServer } from '../lib/chroma/server.ts';
import { deployArgs, digestTree, makeDeployEnv, runCli, sampleDbCopy, SOURCE_SPEC, type CliResult, type DeployEnv } from './helpers/deploy-env.ts';
import { assertSameContent } from './helpers/served-content.ts';
import { startTokenProxy, type TokenProxy } from './helpers/token-proxy.ts';
import { filesUnder } from './helpers/written-files.ts';

const PASSWORD = 'pw-NEVER-PRINT-91c3';
const SOURCE_TOKEN = 'src-token-NEVER-PRINT-5d81e0';
const TARGET_TOKEN = 'tgt-token-NEVER-PRINT-a7c442';

function assertNotPrinted(r: CliResult, secrets: string[]): void {
  for (const s of secrets) assert.ok(!r.stdout.includes(s) && !r.stderr.includes(s), `${s} was printed:\n${r.stdout}\n${r.stderr}`);
}

describe('Chroma credentials', () => {
  let root: string;
  let source: ChromaServer;
  let target: ChromaServer;
  let sourceProxy: TokenProxy;
  let targetProxy: TokenProxy;
  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-token-'));
    [source, target] = await Promise.all([startChromaServer({ path: path.join(root, 'source') }), startChromaServer({ path: path.join(root, 'target') })]);
    await chromaClientFor(source.url).createCollection({ name: 'notes', embeddingFunction: null, configuration: { hnsw: { space: 'cosine' } } });
    await addRecords(source.url, 'notes', { start: 0, count: 60, dim: 8, seed: 5 });
    sourceProxy = await startTokenProxy(source.url, SOURCE_TOKEN);
    targetProxy = await startTokenProxy(target.url, TARGET_TOKEN);
  });
  after(async () => {
    await sourceProxy?.close();
    await targetProxy?.close();
    await source?.stop().catch(() => undefined);
    await target?.stop().catch(() => undefined);
    await fs.rm(root, { recursive: true, force: true });
  });

  const withPassword = (url: string) => url.replace('http://', `http://ferry:${PASSWORD}@`);

  it('a URL with credentials is refused before anything: exit 2, one line, the password in no output and no file', async () => {
    const db = path.join(root, 'deploy-source');
    await sampleDbCopy(db, SOURCE_SPEC, 11);
    const cp = path.join(root, 'cp-refused');
    const logs = path.join(root, 'logs-refused');
    const newDir = path.join(root, 'never-created');
    const runs: [string, string[]][] = [
      ['--health-url', ['deploy', '--source', db, '--target', `local:${root}`, '--volume', '/vol', '--health-url', withPassword(target.url), '--plan']],
      ['--source-url', ['migrate', '--yes', '--source-url', withPassword(source.url), '--target-url', newDir, '--checkpoint-dir', cp, '--log-dir', logs]],
      ['--target-url', ['migrate', '--yes', '--source-url', source.url, '--target-url', withPassword(target.url), '--checkpoint-dir', cp, '--log-dir', logs]],
      ['--new-db-url', ['validate', '--old-db-url', source.url, '--new-db-url', withPassword(target.url), '--output', path.join(root, 'report.md')]],
      ['--health-url', ['verify', '--health-url', withPassword(target.url)]],
    ];
    for (const [flag, args] of runs) {
      const r = await runCli(args);
      assert.equal(r.code, 2, `${flag}: ${r.stderr}${r.stdout}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`${flag} http://\\*\\*\\*@127\\.0\\.0\\.1:\\d+: credentials in a URL are refused .*CHROMA_`));
      assert.equal(r.stdout, '', `${flag}: nothing on stdout`);
      assertNotPrinted(r, [PASSWORD]);
    }
    for (const p of [cp, logs, newDir, path.join(root, 'report.md')]) await assert.rejects(fs.access(p), `${p} was written`);
    for (const f of await filesUnder(root)) assert.ok(!f.text.includes(PASSWORD), `the password is in ${f.file}`);
  });

  it('migrate: CHROMA_SOURCE_API_KEY and CHROMA_TARGET_API_KEY reach each side as x-chroma-token; never printed or written', async () => {
    const cp = path.join(root, 'cp-token');
    const logs = path.join(root, 'logs-token');
    const args = ['migrate', '--yes', '--json', '--source-url', sourceProxy.url, '--target-url', targetProxy.url, '--checkpoint-dir', cp, '--log-dir', logs];

    const without = await runCli(args);
    assert.equal(without.code, 2, without.stderr + without.stdout);
    assert.match(without.stderr, /--source-url http:\/\/127\.0\.0\.1:\d+: the server wants a token; put it in CHROMA_SOURCE_API_KEY or CHROMA_API_KEY/);
    const wrong = await runCli(args, { env: { CHROMA_API_KEY: SOURCE_TOKEN } }); // right for the source, wrong for the target
    assert.equal(wrong.code, 2, wrong.stderr + wrong.stdout);
    assert.match(wrong.stderr, /--target-url http:\/\/127\.0\.0\.1:\d+: the server refused the token; put it in CHROMA_TARGET_API_KEY or CHROMA_API_KEY/);
    assertNotPrinted(wrong, [SOURCE_TOKEN]);

    const before = { source: sourceProxy.accepted, target: targetProxy.accepted };
    const r = await runCli(args, { env: { CHROMA_SOURCE_API_KEY: SOURCE_TOKEN, CHROMA_TARGET_API_KEY: TARGET_TOKEN } });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.ok, true);
    assert.ok(sourceProxy.accepted > before.source && targetProxy.accepted > before.target, 'both servers were reached through their token');
    await assertSameContent(target.url, source.url);
    assertNotPrinted(r, [SOURCE_TOKEN, TARGET_TOKEN]);
    const written = [...await filesUnder(cp), ...await filesUnder(logs)];
    assert.ok(written.some((f) => f.file.endsWith('.jsonl')), 'the log and staging files were looked at');
    for (const f of written) assert.ok(!f.text.includes(SOURCE_TOKEN) && !f.text.includes(TARGET_TOKEN), `a token is in ${f.file}`);
  });

  it('verify: CHROMA_API_KEY reaches the server (heartbeat, counts, timed queries); without it the report says which variable', async () => {
    const ok = await runCli(['verify', '--health-url', sourceProxy.url, '--samples', '5', '--timeout', '10s', '--json'], { env: { CHROMA_API_KEY: SOURCE_TOKEN } });
    assert.equal(ok.code, 0, ok.stderr + ok.stdout);
    assert.equal(ok.json.healthy, true);
    assert.deepEqual(ok.json.collections.map((c: { name: string; count: number }) => [c.name, c.count]), [['default_tenant/default_database/notes', 60]]);
    assert.equal(ok.json.latency.overall.samples, 5, 'the timed queries went through too');
    assertNotPrinted(ok, [SOURCE_TOKEN]);

    const refused = await runCli(['verify', '--health-url', sourceProxy.url, '--timeout', '10s']);
    assert.equal(refused.code, 1, refused.stderr + refused.stdout);
    assert.match(refused.stdout, /problem: .*wants a token \(HTTP 401\); put it in CHROMA_API_KEY/);
  });
});

describe('deploy to a Chroma behind token auth', () => {
  let env: DeployEnv;
  let proxy: TokenProxy;
  const TOKEN = 'deploy-token-NEVER-PRINT-0b9e17';
  before(async () => {
    env = await makeDeployEnv();
    proxy = await startTokenProxy(env.url, TOKEN);
  });
  after(async () => {
    await proxy?.close();
    await env?.stop();
  });

  it('without CHROMA_API_KEY: refused in the preflight, nothing swapped; with it: deployed and verified through the token', async () => {
    const target = `local:${path.join(env.root, 'target')}`;
    const args = deployArgs(env, target, '/data');
    args[args.indexOf('--health-url') + 1] = proxy.url;
    const volumeBefore = await digestTree(env.volumeOnDisk);
    const without = await runCli(args);
    assert.equal(without.code, 2, without.stderr + without.stdout);
    assert.match(without.stderr, /Chroma at http:\/\/127\.0\.0\.1:\d+ wants a token \(HTTP 401\); put it in CHROMA_API_KEY/);
    assert.equal(await digestTree(env.volumeOnDisk), volumeBefore, 'nothing changed on the volume');

    const accepted = proxy.accepted;
    const r = await runCli(args, { env: { CHROMA_API_KEY: TOKEN } });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.verified, true);
    assert.ok(proxy.accepted > accepted, 'the checks went through the token');
    assertNotPrinted(r, [TOKEN]);
  });
});
