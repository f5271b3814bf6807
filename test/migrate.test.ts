/**
 * `chroma-ferry migrate` against real Chroma servers started here: Chroma -> Chroma with `none`
 * and `seed-schema`, to and from .jsonl, from a persist dir, resume after a kill, dry-run, the
 * validation gate, a writer during the export, and bad input.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromaClientFor } from '../lib/chroma/client.ts';
import { servedContentDigest } from '../testkit/content-digest.ts';
import { listCollectionCounts } from '../lib/chroma/http.ts';
import { addRecords, buildSampleDb, type SampleCollectionSpec } from '../testkit/sample-db.ts';
import { startChromaServer, type ChromaServer } from '../lib/chroma/server.ts';
import { fieldProblem, requiredFields } from '../lib/migrate/seed-schema.ts';
import { migrateKilledMidImport } from './helpers/migrate-kill.ts';
import { assertSameContent } from './helpers/served-content.ts';
import { digestTree, runCli } from './helpers/deploy-env.ts';

const SPECS: SampleCollectionSpec[] = [
  { name: 'acme_personality', count: 260, dim: 32, space: 'cosine' },
  { name: 'acme_humor', count: 140, dim: 32, space: 'ip' },
  { name: 'acme_notes', count: 200, dim: 32 },
];

describe('migrate', () => {
  let root: string;
  let sourceDir: string;
  let source: ChromaServer;
  const servers: ChromaServer[] = [];

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-migrate-'));
    sourceDir = path.join(root, 'source');
    await buildSampleDb(sourceDir, SPECS, { seed: 7 });
    source = await startChromaServer({ path: path.join(root, 'source-served') });
    servers.push(source);
    await buildSampleDbOn(source.url);
  });
  after(async () => {
    for (const s of servers) await s.stop().catch(() => undefined);
    await fs.rm(root, { recursive: true, force: true });
  });

  async function buildSampleDbOn(url: string): Promise<void> {
    const client = chromaClientFor(url);
    for (const spec of SPECS) {
      const tuned = spec.name === 'acme_personality' ? { ef_construction: 200, max_neighbors: 32 } : {};
      await client.createCollection({ name: spec.name, embeddingFunction: null, configuration: { hnsw: { space: spec.space ?? 'l2', ...tuned } } });
      await addRecords(url, spec.name, { start: 0, count: spec.count, dim: spec.dim, seed: 7 });
    }
  }

  async function newServer(): Promise<ChromaServer> {
    const s = await startChromaServer({ path: await fs.mkdtemp(path.join(root, 'target-')) });
    servers.push(s);
    return s;
  }

  const migrate = (args: string[], cwd?: string) => runCli(['migrate', '--yes', '--json', '--checkpoint-dir', path.join(cwd ?? root, `cp-${Math.random().toString(36).slice(2)}`),
    '--log-dir', path.join(root, 'logs'), ...args]);

  const spaces = async (url: string) => Object.fromEntries((await chromaClientFor(url).listCollections()).map((c) => [c.name, c.configuration?.hnsw?.space ?? 'l2']));

  it('Chroma -> Chroma with none: every record equal, distance spaces kept, max batch size respected', async () => {
    const target = await newServer();
    const r = await migrate(['--source-url', source.url, '--target-url', target.url, '--batch-size', '999999']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.ok, true);
    await assertSameContent(target.url, source.url);
    assert.deepEqual(await spaces(target.url), { acme_personality: 'cosine', acme_humor: 'ip', acme_notes: 'l2' });
    const tuned = await chromaClientFor(target.url).getCollection({ name: 'acme_personality', embeddingFunction: undefined } as never);
    assert.equal(tuned.configuration?.hnsw?.ef_construction, 200, 'the source HNSW settings are recreated');
    assert.equal(tuned.configuration?.hnsw?.max_neighbors, 32);
    const max = await chromaClientFor(target.url).getMaxBatchSize();
    assert.equal(r.json.batchSize, max, 'clamped to the target max batch size');
    assert.ok(r.json.warnings.some((w: string) => /above the target's max batch size/.test(w)));
    assert.ok(r.json.verify.sampled > 0);
    // The pre-migration backup exists (empty: the target had none of these collections).
    const backup = (await fs.readFile(r.json.backupFile, 'utf8')).trim().split('\n');
    assert.equal(JSON.parse(backup[0]!).type, 'chroma-ferry-export');
    assert.deepEqual(JSON.parse(backup[0]!).touched.sort(), ['acme_humor', 'acme_notes', 'acme_personality']);
    // JSON-lines log with a line per batch.
    const log = (await fs.readFile(r.json.logFile, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(log.filter((e) => e.event === 'batch').length, r.json.import.batchesSent);
  });

  it('seed-schema: four collections, every record with the schema fields, typed', async () => {
    const target = await newServer();
    const r = await migrate(['--source-url', source.url, '--target-url', target.url, '--transform', 'seed-schema', '--prefix', 'acme']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const counts = Object.fromEntries((await listCollectionCounts(target.url)).map((c) => [c.name, c.count]));
    // acme_notes has no type in its name: corpus.
    assert.deepEqual(counts, { acme_corpus: 200, acme_humor: 140, acme_personality: 260 });
    const client = chromaClientFor(target.url);
    for (const [name, type] of [['acme_personality', 'personality'], ['acme_humor', 'humor'], ['acme_corpus', 'corpus']] as const) {
      const col = await client.getCollection({ name, embeddingFunction: undefined } as never);
      const got = await col.get({ limit: 50, include: ['metadatas'] as never });
      for (const m of got.metadatas) {
        for (const [field, spec] of Object.entries(requiredFields(type))) {
          assert.equal(fieldProblem(m?.[field] as never, spec.type), null, `${name}.${field} = ${JSON.stringify(m?.[field])}`);
        }
        assert.match(String(m?.if_citation_uri), /^if:\/\/citation\//);
        assert.equal(m?.collection_type, type);
      }
    }
  });

  it('to .jsonl and back into a new persist dir; the source dir stays byte-identical', async () => {
    const before = await digestTree(sourceDir);
    const file = path.join(root, 'export.jsonl');
    const out = await migrate(['--source-url', sourceDir, '--target-url', file]);
    assert.equal(out.code, 0, out.stderr + out.stdout);
    assert.equal(await digestTree(sourceDir), before, 'the persist dir was served from a copy');
    const dir = path.join(root, 'restored dir');
    const back = await migrate(['--source-url', file, '--target-url', dir]);
    assert.equal(back.code, 0, back.stderr + back.stdout);
    const check = await startChromaServer({ path: dir });
    servers.push(check);
    const orig = await startChromaServer({ path: await copyDir(sourceDir) });
    servers.push(orig);
    await assertSameContent(check.url, orig.url);
    assert.deepEqual(await spaces(check.url), { acme_personality: 'cosine', acme_humor: 'ip', acme_notes: 'l2' });
    // Writing onto an existing export is refused.
    const again = await migrate(['--source-url', sourceDir, '--target-url', file]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /already exists/);
  });

  async function copyDir(dir: string): Promise<string> {
    const to = await fs.mkdtemp(path.join(root, 'copy-'));
    await fs.cp(dir, to, { recursive: true });
    return to;
  }

  it('resume after a kill mid-import: exact counts, no duplicates, done batches not re-sent', async () => {
    const target = await newServer();
    const cp = path.join(root, 'cp-resume');
    const args = ['migrate', '--yes', '--json', '--source-url', source.url, '--target-url', target.url, '--batch-size', '20', '--workers', '1',
      '--checkpoint-dir', cp, '--log-dir', path.join(root, 'logs')];
    const doneAtKill = await migrateKilledMidImport(args, cp, 4);
    const total = SPECS.reduce((n, s) => n + Math.ceil(s.count / 20), 0);
    assert.ok(doneAtKill < total, 'killed before the end');

    const r = await runCli(args.concat('--resume'));
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.resumed, true);
    assert.equal(r.json.import.batchesSkipped, doneAtKill, 'batches done before the kill are not re-sent');
    assert.equal(r.json.import.batchesSent, total - doneAtKill);
    await assertSameContent(target.url, source.url); // exact content, no duplicates
  });

  it('--dry-run writes nothing to the target', async () => {
    const target = await newServer();
    const client = chromaClientFor(target.url);
    await client.createCollection({ name: 'acme_notes', embeddingFunction: null });
    await addRecords(target.url, 'acme_notes', { start: 0, count: 10, dim: 32, seed: 99 });
    const before = await servedContentDigest(target.url);
    const cpDir = path.join(root, 'cp-plan');
    const plan = await runCli(['migrate', '--plan', '--json', '--source-url', source.url, '--target-url', target.url, '--checkpoint-dir', cpDir]);
    assert.equal(plan.code, 0, plan.stderr);
    assert.deepEqual(plan.json.steps.map((s: { name: string }) => s.name), ['connect', 'export', 'transform', 'backup', 'import', 'verify', 'cutover']);
    assert.deepEqual(plan.json.collections.map((c: { name: string; existsOnTarget: boolean }) => [c.name, c.existsOnTarget]),
      [['acme_humor', false], ['acme_notes', true], ['acme_personality', false]]);
    await assert.rejects(fs.access(cpDir), 'the plan wrote no checkpoint');
    const r = await migrate(['--source-url', source.url, '--target-url', target.url, '--dry-run']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.dryRun, true);
    assert.match(r.json.steps.find((s: { name: string }) => s.name === 'import').note, /would import 600 records into 3 collections/);
    assert.equal(await servedContentDigest(target.url), before);
    assert.deepEqual((await listCollectionCounts(target.url)).map((c) => [c.name, c.count]), [['acme_notes', 10]]);
  });

  it('validation gate: 10% bad records and --min-valid 0.95 stop before any write', async () => {
    const file = path.join(root, 'bad.jsonl');
    const lines = [JSON.stringify({ type: 'chroma-ferry-export', version: 1, createdAt: new Date().toISOString() }),
      JSON.stringify({ type: 'collection', name: 'mixed', space: 'l2', metadata: null })];
    for (let i = 0; i < 200; i++) {
      const bad = i % 10 === 0;
      lines.push(JSON.stringify({ type: 'record', collection: 'mixed', id: `r${i}`, embedding: bad ? null : [i, 1, 2, 3], document: `doc ${i}`, metadata: { i } }));
    }
    await fs.writeFile(file, `${lines.join('\n')}\n`);
    const target = await newServer();
    const r = await migrate(['--source-url', file, '--target-url', target.url, '--min-valid', '0.95']);
    assert.equal(r.code, 1, r.stderr + r.stdout);
    assert.match(r.json.error, /180\/200 records valid \(90\.0%\), under --min-valid 0\.95; most frequent issues: missing_embedding \(20 records, e\.g\. /);
    assert.deepEqual(await listCollectionCounts(target.url), [], 'nothing written');
    const ok = await migrate(['--source-url', file, '--target-url', target.url, '--min-valid', '0.9']);
    assert.equal(ok.code, 0, ok.stderr + ok.stdout);
    assert.deepEqual((await listCollectionCounts(target.url)).map((c) => [c.name, c.count]), [['mixed', 180]]);
  });

  it('a writer during the export is detected, not silently absorbed', async () => {
    const busy = await newServer();
    await chromaClientFor(busy.url).createCollection({ name: 'busy', embeddingFunction: null });
    await addRecords(busy.url, 'busy', { start: 0, count: 600, dim: 8 });
    let stop = false;
    let next = 600;
    const writer = (async () => {
      while (!stop) {
        await addRecords(busy.url, 'busy', { start: next, count: 5, dim: 8 });
        next += 5;
      }
    })();
    const r = await migrate(['--source-url', busy.url, '--target-url', path.join(root, 'busy.jsonl'), '--batch-size', '10', '--workers', '1']);
    stop = true;
    await writer;
    assert.equal(r.code, 2, r.stderr + r.stdout);
    assert.match(r.stderr, /being written to.*stop the writers/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });

  it('bad input: one clear line, exit 2', async () => {
    const thrower = path.join(root, 'throws.ts');
    await fs.writeFile(thrower, 'export default function transform() { throw new Error("boom"); }\n');
    const wrong = path.join(root, 'wrong-shape.ts');
    await fs.writeFile(wrong, 'export default function transform(r: { id: string }) { return { id: r.id }; }\n');
    const notDir = path.join(root, 'a-file');
    await fs.writeFile(notDir, '');
    const target = await newServer();
    const cases: [string[], RegExp][] = [
      [['--source-url', 'http://127.0.0.1:9', '--target-url', target.url], /--source-url http:\/\/127\.0\.0\.1:9: no Chroma server answers there/],
      [['--source-url', source.url, '--target-url', target.url, '--filter-collection', 'acme_persnality'], /no collection acme_persnality on .* \(it has: acme_humor, acme_notes, acme_personality\)/],
      [['--source-url', source.url, '--target-url', target.url, '--transform', thrower], /--transform .*throws\.ts threw on record .*: boom/],
      [['--source-url', source.url, '--target-url', target.url, '--transform', wrong], /returned the wrong shape/],
      [['--source-url', source.url, '--target-url', target.url, '--checkpoint-dir', path.join(notDir, 'cp')], /--checkpoint-dir .* is not writable/],
      [['--source-url', source.url, '--target-url', target.url, '--min-valid', '2'], /--min-valid 2: a share between 0 and 1/],
    ];
    for (const [args, re] of cases) {
      const r = await runCli(['migrate', '--yes', '--json', '--log-dir', path.join(root, 'logs'), '--checkpoint-dir', path.join(root, 'cp-bad'), ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    assert.deepEqual(await listCollectionCounts(target.url), [], 'a mistyped source collection created nothing anywhere');
    assert.deepEqual((await listCollectionCounts(source.url)).map((c) => c.name).sort(), ['acme_humor', 'acme_notes', 'acme_personality']);
  });
});
