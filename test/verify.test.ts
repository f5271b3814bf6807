/**
 * `chroma-ferry verify` against real Chroma servers: heartbeat, counts against a manifest (a file,
 * or the one a deploy kept in the target's .ferry/), query latency by vector with a p95 limit,
 * exit codes 0 / 1 / 2. Also the percentile and sampling helpers on their own.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromaClientFor } from '../lib/chroma/client.ts';
import { listCollectionCounts } from '../lib/chroma/http.ts';
import { percentile, sampleOffsets } from '../lib/chroma/query-latency.ts';
import { freePort } from '../lib/chroma/server.ts';
import { deployArgs, makeDeployEnv, runCli, type DeployEnv } from './helpers/deploy-env.ts';

describe('percentile and sampling helpers', () => {
  it('percentile is nearest-rank: a measured value', () => {
    const twenty = Array.from({ length: 20 }, (_, i) => 20 - i); // 20..1, unsorted
    assert.equal(percentile(twenty, 50), 10);
    assert.equal(percentile(twenty, 95), 19);
    assert.equal(percentile(twenty, 100), 20);
    assert.equal(percentile([7], 95), 7);
    assert.equal(percentile([1, 2, 3, 4], 0), 1);
    assert.throws(() => percentile([], 50));
  });

  it('sampleOffsets spreads one offset per stratum, distinct, within the collection', () => {
    const offs = sampleOffsets(1000, 20);
    assert.equal(offs.length, 20);
    offs.forEach((o, i) => assert.ok(o >= i * 50 && o < (i + 1) * 50, `offset ${o} in stratum ${i}`));
    assert.deepEqual(sampleOffsets(5, 20), [0, 1, 2, 3, 4], 'fewer records than samples: every record');
    assert.deepEqual(sampleOffsets(0, 20), []);
    assert.deepEqual(sampleOffsets(10, 2, () => 0.999), [4, 9]);
  });
});

describe('chroma-ferry verify', () => {
  let env: DeployEnv;
  let manifestFile: string;
  let target: string;
  before(async () => {
    env = await makeDeployEnv();
    target = `local:${path.join(env.root, 'target')}`;
    // An empty collection beside `legacy` (40 records): listed and counted, skipped for latency.
    await chromaClientFor(env.url).createCollection({ name: 'empty', embeddingFunction: null });
    manifestFile = path.join(env.root, 'manifest.json');
    await fs.writeFile(manifestFile, JSON.stringify({ collections: await listCollectionCounts(env.url) }));
  });
  after(async () => env?.stop());

  it('healthy: exit 0, every collection with its count and expected count, p50/p95/max per collection and overall', async () => {
    const r = await runCli(['verify', '--health-url', env.url, '--manifest', manifestFile, '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const j = r.json;
    assert.equal(j.healthy, true);
    assert.equal(j.api, 'v2');
    assert.deepEqual(j.problems, []);
    assert.equal(j.manifest, manifestFile);
    const byName = Object.fromEntries(j.collections.map((c: { name: string }) => [c.name, c]));
    const legacy = byName['default_tenant/default_database/legacy'];
    const empty = byName['default_tenant/default_database/empty'];
    assert.equal(legacy.count, 40);
    assert.equal(legacy.expected, 40);
    assert.equal(legacy.latency.samples, 20);
    assert.ok(legacy.latency.p50Ms > 0 && legacy.latency.p50Ms <= legacy.latency.p95Ms && legacy.latency.p95Ms <= legacy.latency.maxMs, JSON.stringify(legacy.latency));
    assert.ok(legacy.latency.p95Ms < 300, `a local server answers well under the seed's 300 ms (p95 ${legacy.latency.p95Ms})`);
    assert.equal(empty.count, 0);
    assert.equal(empty.latency, null);
    assert.equal(empty.latencySkipped, 'empty collection');
    assert.deepEqual(j.latency.overall, legacy.latency, 'one non-empty collection: overall = that collection');
    assert.equal(j.latency.maxLatencyMs, 300);
    console.log(`# measured latency (legacy, 40 x 16-dim, 20 queries, top 10): p50 ${legacy.latency.p50Ms.toFixed(2)} ms, p95 ${legacy.latency.p95Ms.toFixed(2)} ms, max ${legacy.latency.maxMs.toFixed(2)} ms`);

    const plain = await runCli(['verify', '--health-url', env.url, '--manifest', manifestFile, '--samples', '5']);
    assert.equal(plain.code, 0, plain.stdout + plain.stderr);
    assert.match(plain.stdout, /^healthy {2}http:\/\/127\.0\.0\.1:\d+ \(API v2\)$/m);
    assert.match(plain.stdout, /^ {2}default_tenant\/default_database\/legacy: 40 {2}latency p50 [\d.]+ ms, p95 [\d.]+ ms, max [\d.]+ ms \(5 queries\)$/m);
    assert.match(plain.stdout, /^ {2}default_tenant\/default_database\/empty: 0 {2}latency: skipped, empty collection$/m);
    assert.match(plain.stdout, /^ {2}overall latency: .*limit p95 <= 300 ms$/m);
  });

  it('a latency limit below what the server achieves: exit 1, the measured p95 in the message', async () => {
    const r = await runCli(['verify', '--health-url', env.url, '--manifest', manifestFile, '--max-latency-ms', '0.001', '--json']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const j = r.json;
    assert.equal(j.healthy, false);
    const p95 = j.collections.find((c: { name: string }) => c.name.endsWith('/legacy')).latency.p95Ms as number;
    const problem = j.problems.find((p: string) => p.startsWith('default_tenant/default_database/legacy: query latency p95'));
    assert.ok(problem, j.problems.join('\n'));
    const shown = Number(/p95 ([\d.]+) ms/.exec(problem)![1]);
    assert.ok(Math.abs(shown - p95) <= Math.max(0.05 * p95, 0.5), `message shows the measured p95: ${problem} vs ${p95}`);
    assert.match(problem, /over the limit of 0\.0010 ms/);
    assert.ok(j.problems.some((p: string) => p.startsWith('overall query latency p95')));
    // Counts are fine: only latency is the problem.
    assert.equal(j.problems.length, 2, j.problems.join('\n'));
  });

  it('a server that is down: exit 1, one clear line, quickly', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const t0 = Date.now();
    const r = await runCli(['verify', '--health-url', url, '--timeout', '2s']);
    const took = Date.now() - t0;
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`^UNHEALTHY {2}${url.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(r.stdout, /problem: server at http:\/\/127\.0\.0\.1:\d+ did not answer: Chroma at .* did not answer within 2000 ms/);
    assert.doesNotMatch(r.stdout + r.stderr, /\n\s+at /, 'no stack trace');
    assert.ok(took < 20_000, `took ${took} ms`);
  });

  it('bad input is one line and exit 2', async () => {
    for (const [args, msg] of [
      [['--max-latency-ms', 'fast'], /--max-latency-ms fast: must be a number > 0/],
      [['--samples', '-1'], /--samples -1: must be a whole number >= 0/],
      [['--top-k', '0'], /--top-k 0: must be a whole number >= 1/],
      [['--manifest', path.join(env.root, 'nope.json')], /--manifest .*nope\.json: cannot read it as a manifest/],
    ] as [string[], RegExp][]) {
      const r = await runCli(['verify', '--health-url', env.url, ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, msg);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    const noUrl = await runCli(['verify', '--health-url', 'ftp://x']);
    assert.equal(noUrl.code, 2);
  });

  it('records missing against the manifest: exit 1, the collection named with both counts', async () => {
    const legacy = await chromaClientFor(env.url).getCollection({ name: 'legacy', embeddingFunction: undefined } as never);
    const some = await legacy.get({ limit: 3 });
    await legacy.delete({ ids: some.ids });
    const r = await runCli(['verify', '--health-url', env.url, '--manifest', manifestFile, '--json']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.deepEqual(r.json.problems, ['default_tenant/default_database/legacy: 37 records, expected 40']);
    const c = r.json.collections.find((x: { name: string }) => x.name.endsWith('/legacy'));
    assert.deepEqual([c.count, c.expected], [37, 40]);
  });

  it('with --target: the manifest the last deploy kept in .ferry/ (none before; counts after; gone after a rollback)', async () => {
    const verifyTarget = (extra: string[] = []) => runCli(['verify', '--health-url', env.url, '--target', target, '--volume', '/data', '--json', ...extra]);
    const keptFile = path.join(env.volumeOnDisk, '.ferry', 'manifest-chroma_db.json');

    const before = await verifyTarget();
    assert.equal(before.code, 0, before.stdout + before.stderr);
    assert.equal(before.json.manifest, null);
    assert.match(before.json.notes.join('\n'), /no manifest of a deploy at local:.* \/.*\/data\/\.ferry\/manifest-chroma_db\.json: counts not compared; heartbeat and latency only/);
    assert.ok(before.json.latency.overall.samples > 0, 'latency is still measured');

    const d = await runCli(deployArgs(env, target, '/data'));
    assert.equal(d.code, 0, d.stderr + d.stdout);
    const kept = JSON.parse(await fs.readFile(keptFile, 'utf8'));
    assert.equal(kept.runId, d.json.runId);
    assert.equal(kept.verified, true);
    assert.deepEqual(kept.collections.map((c: { name: string; count: number }) => [c.name, c.count]), [['books', 300], ['laws', 150]]);

    const ok = await verifyTarget();
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.equal(ok.json.manifest, `${target} ${keptFile}`);
    assert.deepEqual(ok.json.collections.map((c: { name: string; count: number; expected: number }) => [c.name.split('/')[2], c.count, c.expected]), [['books', 300, 300], ['laws', 150, 150]]);
    for (const c of ok.json.collections) assert.equal(c.latency.samples, 20);
    assert.equal(ok.json.latency.overall.samples, 40);
    console.log(`# measured latency after the deploy (books 300 + laws 150, 32-dim): overall p50 ${ok.json.latency.overall.p50Ms.toFixed(2)} ms, p95 ${ok.json.latency.overall.p95Ms.toFixed(2)} ms, max ${ok.json.latency.overall.maxMs.toFixed(2)} ms`);

    // The kept manifest is what verify compares with: records lost since the deploy are found.
    const books = await chromaClientFor(env.url).getCollection({ name: 'books', embeddingFunction: undefined } as never);
    await books.delete({ ids: (await books.get({ limit: 5 })).ids });
    const lost = await verifyTarget();
    assert.equal(lost.code, 1, lost.stdout + lost.stderr);
    assert.deepEqual(lost.json.problems, ['default_tenant/default_database/books: 295 records, expected 300']);

    // --manifest wins over the kept one.
    const explicit = await verifyTarget(['--manifest', manifestFile]);
    assert.equal(explicit.json.manifest, manifestFile);

    // After a rollback the kept manifest no longer describes the live data: it is removed.
    const rb = await runCli(['rollback', '--target', target, '--volume', '/data', '--restart-cmd', env.restartCmd, '--health-url', env.url, '--health-timeout', '30s', '--yes', '--json']);
    assert.equal(rb.code, 0, rb.stdout + rb.stderr);
    await assert.rejects(fs.access(keptFile));
    const afterRollback = await verifyTarget();
    assert.equal(afterRollback.code, 0, afterRollback.stdout + afterRollback.stderr);
    assert.equal(afterRollback.json.manifest, null);
  });
});
