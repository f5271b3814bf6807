/**
 * Issue 17 section 3: export, transform, validation and import run at once into the staging
 * collections, and the --min-valid gate is decided after the last record, before the cutover.
 * Against real Chroma servers: the log shows batches landing before the last record is validated;
 * a run under --min-valid drops what it staged (the target exactly as before, exit 1 with the
 * counts); a name only the records reveal, refused mid-stream, drops the staging too (exit 2).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromaClientFor } from '../lib/chroma/client.ts';
import { startChromaServer, type ChromaServer } from '../lib/chroma/server.ts';
import { addRecords, sampleRecords } from '../testkit/sample-db.ts';
import { memoryCap } from '../runbooks/migrate/context.ts';
import { runCli } from './helpers/deploy-env.ts';

const DIM = 8;

describe('migrate: export, transform, validation and import overlapped', () => {
  let root: string;
  let target: ChromaServer;

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-stream-'));
    target = await startChromaServer({ path: path.join(root, 'target') });
    await chromaClientFor(target.url).createCollection({ name: 'keep_me', embeddingFunction: null });
    await addRecords(target.url, 'keep_me', { start: 0, count: 5, dim: DIM, seed: 4 });
  });
  after(async () => {
    await target?.stop().catch(() => undefined);
    await fs.rm(root, { recursive: true, force: true });
  });

  const migrate = (args: string[]) => runCli(['migrate', '--yes', '--json', '--checkpoint-dir', path.join(root, `cp-${Math.random().toString(36).slice(2)}`),
    '--log-dir', path.join(root, 'logs'), ...args]);

  async function chromaState(url: string): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const c of await chromaClientFor(url).listCollections()) out[c.name] = await c.count();
    return out;
  }

  /** A .jsonl export of one collection: `n` records, those whose index `bad(i)` holds without an embedding. */
  async function source(name: string, collection: string, n: number, bad: (i: number) => boolean, metadata: (i: number) => Record<string, unknown> = (i) => ({ i })): Promise<string> {
    const file = path.join(root, name);
    const emb = sampleRecords({ collection, start: 0, count: n, dim: DIM, seed: 7 }).embeddings;
    const lines: unknown[] = [{ type: 'chroma-ferry-export', version: 1, createdAt: new Date().toISOString() }, { type: 'collection', name: collection, space: 'l2', metadata: null }];
    for (let i = 0; i < n; i++) lines.push({ type: 'record', collection, id: `r${i}`, embedding: bad(i) ? null : emb[i], document: `doc ${i}`, metadata: metadata(i) });
    await fs.writeFile(file, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    return file;
  }

  const events = async (logFile: string) => (await fs.readFile(logFile, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; step?: string; status?: string });

  it('batches land in staging before the last record is validated; under --min-valid (decided after the last record) the staging is dropped', async () => {
    // 200 records in batches of 10; the 30 invalid ones are the last: only the end of the stream shows the share is too low.
    const file = await source('late-bad.jsonl', 'late_bad', 200, (i) => i >= 170);
    const before = await chromaState(target.url);
    const r = await migrate(['--source-url', file, '--target-url', target.url, '--batch-size', '10', '--min-valid', '0.9']);
    assert.equal(r.code, 1, r.stderr + r.stdout);
    assert.match(r.json.error, /validation gate: 170\/200 records valid \(85\.0%\), under --min-valid 0\.9; most frequent issues: missing_embedding \(30 records, e\.g\. r170, r171, r172\)/);
    assert.match(r.json.error, /nothing cut over, the 1 staging collections dropped/);
    assert.deepEqual(await chromaState(target.url), before, 'the target is exactly as before');
    const log = await events(r.json.logFile);
    const firstBatch = log.findIndex((e) => e.event === 'batch');
    const validation = log.findIndex((e) => e.event === 'validation');
    assert.ok(firstBatch >= 0, 'batches were sent while the records streamed');
    assert.ok(firstBatch < validation, 'the first batch landed before the last record was validated');
    assert.equal(log.filter((e) => e.event === 'batch').length, 17, 'every valid record was staged before the gate');
    assert.ok(log.some((e) => e.event === 'staging_dropped'));
    // The steps say they overlap.
    const note = (name: string) => r.json.steps.find((s: { name: string }) => s.name === name)?.note ?? '';
    assert.match(note('export'), /overlapped/);
    assert.match(note('transform'), /overlapped/);
  });

  it('batches are sized from the vector size, so memory does not grow with the data (768-d: the memory cap, not the server max)', async (t) => {
    // A Chroma source: its collections carry no vector size (the transform step reads it from the first record).
    const src = await startChromaServer({ path: path.join(root, 'wide-source') });
    t.after(() => src.stop());
    await chromaClientFor(src.url).createCollection({ name: 'wide', embeddingFunction: null, configuration: { hnsw: { space: 'l2' } } } as never);
    await addRecords(src.url, 'wide', { start: 0, count: 30, dim: 768, seed: 3 });
    const r = await migrate(['--source-url', src.url, '--target-url', target.url]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const max = await chromaClientFor(target.url).getMaxBatchSize();
    assert.ok(memoryCap(768) < max, `the cap (${memoryCap(768)}) is below the server's max (${max})`);
    assert.equal(r.json.batchSize, memoryCap(768), 'not the server max: ~3 batches are held at once');
    assert.equal((await chromaState(target.url)).wide, 30);
  });

  it('--plan says the steps run overlapped, from the same Step objects', async () => {
    const file = await source('plan.jsonl', 'planned', 20, () => false);
    const r = await runCli(['migrate', '--plan', '--json', '--source-url', file, '--target-url', target.url, '--checkpoint-dir', path.join(root, 'cp-plan')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.overlapped, true);
    const does = Object.fromEntries(r.json.steps.map((s: { name: string; does: string }) => [s.name, s.does]));
    for (const step of ['export', 'transform', 'import']) assert.match(does[step], /overlapped/, step);
    const text = await runCli(['migrate', '--plan', '--source-url', file, '--target-url', target.url, '--checkpoint-dir', path.join(root, 'cp-plan')]);
    assert.match(text.stdout, /export, transform \(with validation\) and import run overlapped/);
  });

  it('at or above --min-valid the same records are cut over: the valid ones exactly, the invalid ones never sent', async () => {
    const file = await source('late-bad-ok.jsonl', 'late_ok', 200, (i) => i >= 170);
    const r = await migrate(['--source-url', file, '--target-url', target.url, '--batch-size', '10', '--min-valid', '0.85']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.validation.valid, 170);
    assert.equal(r.json.import.recordsSent, 170);
    assert.match(r.json.steps.find((s: { name: string }) => s.name === 'import').note, /overlapped with export, transform and validation/);
    const col = await chromaClientFor(target.url).getCollection({ name: 'late_ok', embeddingFunction: undefined } as never);
    assert.equal(await col.count(), 170);
    const got = await col.get({ ids: ['r0', 'r169', 'r170'], include: ['embeddings', 'documents'] as never });
    assert.deepEqual([...got.ids].sort(), ['r0', 'r169']);
    const want = sampleRecords({ collection: 'late_ok', start: 0, count: 200, dim: DIM, seed: 7 }).embeddings[169]!;
    const at = got.ids.indexOf('r169');
    for (let k = 0; k < DIM; k++) assert.ok(Math.abs(got.embeddings[at]![k]! - want[k]!) < 1e-6, 'embedding sent packed, stored as given');
    await chromaClientFor(target.url).deleteCollection({ name: 'late_ok' });
  });

  it('a target name only the records reveal, refused after batches were staged, drops them: exit 2, one line, the target as before', async () => {
    // A module transform routes records by metadata: the last 20 go to a name Chroma refuses.
    const transform = path.join(root, 'route.ts');
    await fs.writeFile(transform, 'export default function route(r: { metadata: { to: string } }) { return { collection: r.metadata.to, record: r }; }\n');
    const file = await source('route.jsonl', 'routed', 120, () => false, (i) => ({ i, to: i < 100 ? 'routed_ok' : 'bad name!' }));
    const before = await chromaState(target.url);
    const r = await migrate(['--source-url', file, '--target-url', target.url, '--batch-size', '10', '--transform', transform]);
    assert.equal(r.code, 2, r.stderr + r.stdout);
    const line = r.stderr.trim();
    assert.equal(line.split('\n').length, 1, line);
    assert.match(line, /target collection "bad name!" \(from source collection "routed"\) is not a valid Chroma .* collection name/);
    assert.match(line, /the 1 staging collections already created were dropped/);
    assert.deepEqual(await chromaState(target.url), before, 'the target is exactly as before');
  });
});
