/**
 * Issue 17 section 1: everything that can fail is found before the first write. Against real
 * Chroma servers (and the Qdrant stand-in): empty collections are migrated and the gate misses
 * none; records the target cannot store (nested objects, lists, null, reserved keys) are counted
 * invalid with their id, field and rule, never sent; collection names the target refuses stop
 * the run with exit 2. Each refusal leaves the target exactly as it was (collections and counts).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromaClientFor } from '../lib/chroma/client.ts';
import { startChromaServer, type ChromaServer } from '../lib/chroma/server.ts';
import { chromaCollectionNameProblem } from '../lib/migrate/target-rules.ts';
import { formatMigrateSummary, type MigrateSummary } from '../runbooks/migrate/index.ts';
import { addRecords, sampleRecords } from '../testkit/sample-db.ts';
import { runCli } from './helpers/deploy-env.ts';
import { startQdrantStandin, type QdrantStandin } from './helpers/qdrant-standin.ts';

const DIM = 8;

describe('migrate: every check that can fail runs before the first write', () => {
  let root: string;
  let source: ChromaServer;
  let target: ChromaServer;
  let qdrant: QdrantStandin;
  const servers: ChromaServer[] = [];

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-prewrite-'));
    source = await startChromaServer({ path: path.join(root, 'source') });
    target = await startChromaServer({ path: path.join(root, 'target') });
    servers.push(source, target);
    const client = chromaClientFor(source.url);
    await client.createCollection({
      name: 'empty_c', embeddingFunction: null, metadata: { owner: 'team-a', note: 'kept empty' },
      configuration: { hnsw: { space: 'cosine', ef_construction: 150, max_neighbors: 24 } },
    });
    await client.createCollection({ name: 'full_a', embeddingFunction: null, configuration: { hnsw: { space: 'ip' } } });
    await addRecords(source.url, 'full_a', { start: 0, count: 100, dim: DIM, seed: 3 });
    // Already on the target, to see that a refused run leaves it alone.
    await chromaClientFor(target.url).createCollection({ name: 'keep_me', embeddingFunction: null });
    await addRecords(target.url, 'keep_me', { start: 0, count: 5, dim: DIM, seed: 4 });
    qdrant = await startQdrantStandin();
  });
  after(async () => {
    await qdrant?.close();
    for (const s of servers) await s.stop().catch(() => undefined);
    await fs.rm(root, { recursive: true, force: true });
  });

  const cpDir = () => path.join(root, `cp-${Math.random().toString(36).slice(2)}`);
  const migrate = (args: string[], checkpointDir = cpDir()) => runCli(['migrate', '--yes', '--json', '--checkpoint-dir', checkpointDir, '--log-dir', path.join(root, 'logs'), ...args]);
  const validate = (oldUrl: string, newUrl: string) => runCli(['validate', '--json', '--yes', '--old-db-url', oldUrl, '--new-db-url', newUrl, '--transform', 'none',
    '--output', path.join(root, `report-${Math.random().toString(36).slice(2)}.md`)]);

  /** Collection name -> record count: what "untouched" is compared with. */
  async function chromaState(url: string): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const c of await chromaClientFor(url).listCollections()) out[c.name] = await c.count();
    return out;
  }

  /** A .jsonl export as migrate reads it: header, a line per collection, a line per record. */
  async function jsonlSource(name: string, collections: { name: string; records: { id: string; metadata: unknown }[] }[]): Promise<string> {
    const file = path.join(root, name);
    const lines: unknown[] = [{ type: 'chroma-ferry-export', version: 1, createdAt: new Date().toISOString() }];
    for (const c of collections) {
      lines.push({ type: 'collection', name: c.name, space: 'l2', metadata: null });
      const emb = sampleRecords({ collection: c.name, start: 0, count: c.records.length, dim: DIM, seed: 9 }).embeddings;
      c.records.forEach((r, i) => lines.push({ type: 'record', collection: c.name, id: r.id, embedding: emb[i], document: `doc ${r.id}`, metadata: r.metadata }));
    }
    await fs.writeFile(file, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    return file;
  }

  it('an empty collection is created with its space, HNSW settings and metadata, counted in the summary, and the gate misses none', async () => {
    const dest = await startChromaServer({ path: path.join(root, 'dest-empty') });
    servers.push(dest);
    const r = await migrate(['--source-url', source.url, '--target-url', dest.url]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(await chromaState(dest.url), { empty_c: 0, full_a: 100 });
    const made = await chromaClientFor(dest.url).getCollection({ name: 'empty_c', embeddingFunction: undefined } as never);
    assert.equal(made.configuration?.hnsw?.space, 'cosine');
    assert.equal(made.configuration?.hnsw?.ef_construction, 150);
    assert.equal(made.configuration?.hnsw?.max_neighbors, 24);
    assert.deepEqual(made.metadata, { owner: 'team-a', note: 'kept empty' });
    const summary = formatMigrateSummary(r.json as MigrateSummary);
    assert.match(summary, /collections: 2 \(1 empty\)/);
    assert.match(summary, /target empty_c \(from empty_c\): 0 expected, 0 on the target/);

    const passed = await validate(source.url, dest.url);
    assert.equal(passed.code, 0, passed.stdout + passed.stderr);
    // The empty collection removed: the gate must see it ({empty_c: 0, full_a: 100} -> {full_a: 100} passed before).
    await chromaClientFor(dest.url).deleteCollection({ name: 'empty_c' });
    const failed = await validate(source.url, dest.url);
    assert.equal(failed.code, 1, failed.stdout + failed.stderr);
    const count = failed.json.checks.find((c: { name: string }) => c.name === 'count_verification');
    assert.equal(count.status, 'FAILED');
    assert.equal(count.figures.missing_collections, 1);
    assert.ok(count.details.some((d: string) => /empty_c: expected on the new database \(0 records\), absent/.test(d)), count.details.join('\n'));
  });

  it('a .jsonl export carries the empty collection, and an import from it creates it', async () => {
    const file = path.join(root, 'with-empty.jsonl');
    const out = await migrate(['--source-url', source.url, '--target-url', file]);
    assert.equal(out.code, 0, out.stderr + out.stdout);
    const collectionLines = (await fs.readFile(file, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((l) => l.type === 'collection');
    assert.deepEqual(collectionLines.map((l) => [l.name, l.space]).sort(), [['empty_c', 'cosine'], ['full_a', 'ip']]);
    const dest = await startChromaServer({ path: path.join(root, 'dest-from-jsonl') });
    servers.push(dest);
    const back = await migrate(['--source-url', file, '--target-url', dest.url]);
    assert.equal(back.code, 0, back.stderr + back.stdout);
    assert.deepEqual(await chromaState(dest.url), { empty_c: 0, full_a: 100 });
    const made = await chromaClientFor(dest.url).getCollection({ name: 'empty_c', embeddingFunction: undefined } as never);
    assert.equal(made.configuration?.hnsw?.ef_construction, 150);
    assert.deepEqual(made.metadata, { owner: 'team-a', note: 'kept empty' });
  });

  it('to Qdrant, an empty collection of unknown vector size is refused before any write, naming it and the fix', async () => {
    const r = await migrate(['--source-url', source.url, '--target-url', `qdrant+${qdrant.url}`]);
    assert.equal(r.code, 2, r.stderr + r.stdout);
    const line = r.stderr.trim();
    assert.equal(line.split('\n').length, 1, line);
    assert.match(line, /collection empty_c \(from source collection empty_c\) is empty, so its vector size is unknown, and Qdrant needs one/);
    assert.match(line, /--filter-collection/);
    assert.deepEqual([...qdrant.collections.keys()], [], 'nothing was created on Qdrant');
    assert.ok(!qdrant.calls.some((c) => /create|upsert/i.test(c)), qdrant.calls.join(', '));
  });

  const BAD: { id: string; metadata: unknown; issue: string }[] = [
    { id: 'bad-nested', metadata: { tags: { a: 1 } }, issue: 'nested_object:tags' },
    { id: 'bad-list', metadata: { tags: ['a', 'b'] }, issue: 'list_value:tags' },
    { id: 'bad-null', metadata: { score: null }, issue: 'null_value:score' },
    { id: 'bad-hash', metadata: { '#kind': 'x' }, issue: 'key_reserved:#kind' },
    { id: 'bad-dollar', metadata: { $and: 'x' }, issue: 'key_reserved:$and' },
    { id: 'bad-chroma', metadata: { 'chroma:document': 7 }, issue: 'key_reserved:chroma:document' },
    { id: 'bad-empty-key', metadata: { '': 1 }, issue: 'key_empty:' },
  ];
  const good = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `ok-${i}`, metadata: { n: i, flag: i % 2 === 0, label: `r${i}`, w: i / 10 } as unknown }));

  it('metadata Chroma cannot store is counted invalid with the record, the field and the rule; under --min-valid nothing is written', async () => {
    const file = await jsonlSource('bad-meta.jsonl', [{ name: 'wide_b', records: [...good(60), ...BAD] }]);
    const before = await chromaState(target.url);
    const cp = cpDir();
    const r = await migrate(['--source-url', file, '--target-url', target.url, '--min-valid', '0.95'], cp);
    assert.equal(r.code, 1, r.stderr + r.stdout);
    assert.equal(r.json.validation.valid, 60);
    assert.equal(r.json.validation.total, 67);
    assert.match(r.json.error, /60\/67 records valid/);
    assert.match(r.json.error, /nothing was written/);
    const issues = Object.fromEntries(r.json.validation.issues.map((i: { issue: string; records: number; ids: string[] }) => [i.issue, i.ids]));
    for (const b of BAD) assert.deepEqual(issues[b.issue], [b.id], `${b.issue}: ${JSON.stringify(r.json.validation.issues)}`);
    assert.deepEqual(await chromaState(target.url), before, 'the target is untouched');
    // The log names each invalid record: its id, the field and the rule.
    const log = (await fs.readFile(r.json.logFile, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((l) => l.event === 'invalid_record');
    assert.equal(log.length, BAD.length);
    const nested = log.find((l) => l.id === 'bad-nested');
    assert.equal(nested.collection, 'wide_b');
    assert.deepEqual(nested.issues.map((i: { field: string; rule: string }) => [i.field, i.rule]), [['tags', 'nested_object']]);
    assert.match(nested.issues[0].text, /tags is a nested object/);
    const rejected = (await fs.readFile(path.join(r.json.checkpointFile, '..', r.json.runId, 'rejected.jsonl'), 'utf8')).split('\n').filter(Boolean);
    assert.equal(rejected.length, BAD.length);
  });

  it('with a lower --min-valid the valid records are imported and the invalid ones never reach the target', async () => {
    const file = await jsonlSource('bad-meta-2.jsonl', [{ name: 'wide_c', records: [...good(60), ...BAD] }]);
    const r = await migrate(['--source-url', file, '--target-url', target.url, '--min-valid', '0.8']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(await (await chromaClientFor(target.url).getCollection({ name: 'wide_c', embeddingFunction: undefined } as never)).count(), 60);
    const summary = formatMigrateSummary(r.json as MigrateSummary);
    assert.match(summary, /nested_object:tags: 1 \(e\.g\. bad-nested\)/);
    // The server still writes: no record with a non-string chroma:document reached it.
    const probe = await chromaClientFor(target.url).getOrCreateCollection({ name: 'probe_after', embeddingFunction: null });
    await probe.add({ ids: ['p'], embeddings: [[1, 2]] });
    assert.equal(await probe.count(), 1);
    await chromaClientFor(target.url).deleteCollection({ name: 'probe_after' });
    await chromaClientFor(target.url).deleteCollection({ name: 'wide_c' });
  });

  it('a collection name Chroma refuses stops the run with exit 2 before any write, naming the collection, the rule and the fix', async () => {
    const file = await jsonlSource('bad-name.jsonl', [
      { name: 'ok_a', records: good(40) },
      { name: 'collé ✓', records: good(30) },
    ]);
    const before = await chromaState(target.url);
    const r = await migrate(['--source-url', file, '--target-url', target.url]);
    assert.equal(r.code, 2, r.stderr + r.stdout);
    const line = r.stderr.trim();
    assert.equal(line.split('\n').length, 1, line);
    assert.match(line, /target collection "collé ✓" is not a valid Chroma 1\.0\.0 collection name: Chroma wants 3-512 characters from \[a-zA-Z0-9._-\]/);
    assert.match(line, /--rename 'collé ✓=NEW_NAME'/);
    assert.deepEqual(await chromaState(target.url), before, 'the target is untouched (ok_a not written either)');
    // The fix the line names works.
    const renamed = await migrate(['--source-url', file, '--target-url', target.url, '--rename', 'collé ✓=colle_ok']);
    assert.equal(renamed.code, 0, renamed.stderr + renamed.stdout);
    assert.equal((await chromaState(target.url)).colle_ok, 30);
  });

  it('an empty collection with a name Chroma refuses is refused too (before any write)', async () => {
    const file = path.join(root, 'empty-bad-name.jsonl');
    await fs.writeFile(file, [
      { type: 'chroma-ferry-export', version: 1, createdAt: new Date().toISOString() },
      { type: 'collection', name: '10.0.0.1', space: 'l2', metadata: null },
    ].map((l) => JSON.stringify(l)).join('\n') + '\n');
    const before = await chromaState(target.url);
    const r = await migrate(['--source-url', file, '--target-url', target.url]);
    assert.equal(r.code, 2, r.stderr + r.stdout);
    assert.match(r.stderr, /target collection "10\.0\.0\.1" is not a valid Chroma .* collection name: Chroma refuses a name that is an IPv4 address/);
    assert.deepEqual(await chromaState(target.url), before);
  });

  it('a collection name Qdrant refuses stops the run with exit 2 before any write', async () => {
    const file = await jsonlSource('qdrant-bad-name.jsonl', [{ name: 'ok_q', records: good(10) }, { name: 'a/b', records: good(5) }]);
    const r = await migrate(['--source-url', file, '--target-url', `qdrant+${qdrant.url}`]);
    assert.equal(r.code, 2, r.stderr + r.stdout);
    assert.match(r.stderr, /target collection "a\/b" is not a valid Qdrant collection name: Qdrant refuses the character "\/"/);
    assert.deepEqual([...qdrant.collections.keys()], []);
    assert.deepEqual(qdrant.violations, []);
  });

  it('the collection name rules agree with the real server, name by name', async () => {
    const client = chromaClientFor(target.url);
    const names = ['ab', 'abc', 'a'.repeat(512), 'a'.repeat(513), '_abc', 'abc_', '-abc', 'a..b', 'a.b', '1.2.3.4', '255.255.255.255', '01.2.3.4',
      '999.999.999.999', '1.2.3', 'collé', 'a b', 'a/b', 'A-B_c.1', '1abc'];
    for (const name of names) {
      const ours = chromaCollectionNameProblem(name) === null;
      let server = true;
      try {
        await client.createCollection({ name, embeddingFunction: null });
        await client.deleteCollection({ name });
      } catch {
        server = false;
      }
      assert.equal(ours, server, `${JSON.stringify(name.length > 20 ? `${name.length} chars` : name)}: ours ${ours ? 'accepts' : 'refuses'}, the server ${server ? 'accepts' : 'refuses'}`);
    }
  });
});
