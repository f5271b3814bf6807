/**
 * Chroma -> Qdrant and back, against the OpenAPI-validating Qdrant stand-in (no Qdrant server
 * can be installed here): each distance, UUID / integer-string / free-string ids, resume after a
 * kill, the way back giving identical records, refusal of a mismatched collection, the validation
 * gate and restore on a Qdrant target, and the API key never in any output.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { v5 as uuidv5 } from 'uuid';
import { chromaClientFor } from '../lib/chroma/client.ts';
import { sampleRecords } from '../testkit/sample-db.ts';
import { startChromaServer, type ChromaServer } from '../lib/chroma/server.ts';
import { CHROMA_ID_NAMESPACE } from '../lib/migrate/qdrant-endpoint.ts';
import { runCli } from './helpers/deploy-env.ts';
import { startQdrantStandin, type QdrantStandin } from './helpers/qdrant-standin.ts';
import { migrateKilledMidImport } from './helpers/migrate-kill.ts';
import { assertSameContent } from './helpers/served-content.ts';

const API_KEY = 'qk-test-7f3a9c1e5b2d8e40';
const DIM = 24;
const COLLECTIONS = [
  { name: 'q_uuid', space: 'cosine' as const, count: 120, id: (i: number) => `0b5e${String(i).padStart(4, '0')}-1c2d-4e5f-8a9b-${String(i).padStart(12, '0')}`.toUpperCase() },
  { name: 'q_ints', space: 'l2' as const, count: 150, id: (i: number) => String(i + 1) },
  { name: 'q_free', space: 'ip' as const, count: 130, id: (i: number) => `doc/${i} «ünïcode» ${i % 7}` },
];

describe('Chroma <-> Qdrant (stand-in validated against the v1.19 OpenAPI document)', () => {
  let root: string;
  let chroma: ChromaServer;
  let qdrant: QdrantStandin;
  const servers: ChromaServer[] = [];
  const env = { QDRANT_API_KEY: API_KEY };

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-qdrant-'));
    chroma = await startChromaServer({ path: path.join(root, 'chroma') });
    servers.push(chroma);
    const client = chromaClientFor(chroma.url);
    for (const c of COLLECTIONS) {
      const col = await client.createCollection({ name: c.name, embeddingFunction: null, configuration: { hnsw: { space: c.space } } });
      const recs = sampleRecords({ collection: c.name, start: 0, count: c.count, dim: DIM, seed: 5 });
      await col.add({ ...recs, ids: recs.ids.map((_, i) => c.id(i)) });
    }
  });
  after(async () => {
    await qdrant?.close();
    for (const s of servers) await s.stop().catch(() => undefined);
    await fs.rm(root, { recursive: true, force: true });
  });
  afterEach(() => {
    assert.deepEqual(qdrant.violations, [], 'every request matched the Qdrant OpenAPI contract');
  });

  const migrate = (args: string[]) => runCli(['migrate', '--yes', '--json', '--checkpoint-dir', path.join(root, `cp-${Math.random().toString(36).slice(2)}`),
    '--log-dir', path.join(root, 'logs'), ...args], { env });

  it('Chroma -> Qdrant: one collection per collection, distances mapped, ids kept or UUID v5, payload at top level', async () => {
    qdrant = await startQdrantStandin({ apiKey: API_KEY });
    const r = await migrate(['--source-url', chroma.url, '--target-url', `qdrant+${qdrant.url}`]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(Object.fromEntries([...qdrant.aliases.keys()].map((n) => [n, ((c) => [c.distance, c.size, c.points.size])(qdrant.collection(n)!)])),
      { q_uuid: ['Cosine', DIM, 120], q_ints: ['Euclid', DIM, 150], q_free: ['Dot', DIM, 130] });
    assert.deepEqual([...qdrant.aliases].sort(), ['q_free', 'q_ints', 'q_uuid'].map((n) => [n, `${n}__ferry_${r.json.runId}`]),
      'imported into run-stamped collections, the names applications use are aliases switched at cutover');
    const uuidPoint = qdrant.collection('q_uuid')!.points.get(`u:${COLLECTIONS[0]!.id(3).toLowerCase()}`);
    assert.ok(uuidPoint, 'a UUID id is kept as the point id');
    assert.equal(uuidPoint.payload.chroma_id, COLLECTIONS[0]!.id(3), 'the original spelling is in the payload');
    const norm = Math.hypot(...uuidPoint.vector);
    assert.ok(Math.abs(norm - 1) < 1e-6, 'Cosine collections hold unit vectors');
    const intPoint = qdrant.collection('q_ints')!.points.get(`u:${uuidv5('7', CHROMA_ID_NAMESPACE)}`);
    assert.ok(intPoint, 'an integer-as-string id becomes its UUID v5');
    assert.equal(intPoint.payload.chroma_id, '7');
    const freeId = COLLECTIONS[2]!.id(4);
    const freePoint = qdrant.collection('q_free')!.points.get(`u:${uuidv5(freeId, CHROMA_ID_NAMESPACE)}`)!;
    assert.equal(freePoint.payload.chroma_id, freeId);
    assert.match(String(freePoint.payload.document), /^q_free #4: /);
    assert.equal(typeof freePoint.payload.category, 'string', 'metadata fields at the top level of the payload');
    assert.equal(r.json.verify.mismatches.length, 0);
    assert.ok(qdrant.calls.filter((c) => c === 'upsert_points').length >= 3);
  });

  it('the way back (Qdrant -> Chroma) gives identical ids, documents, metadatas and embeddings', async () => {
    const back = await startChromaServer({ path: path.join(root, 'back') });
    servers.push(back);
    const r = await migrate(['--source-url', `qdrant+${qdrant.url}`, '--target-url', back.url]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    await assertSameContent(back.url, chroma.url);
  });

  it('the validation gate runs against the Qdrant target and passes', async () => {
    const out = path.join(root, 'gate.md');
    const r = await runCli(['validate', '--json', '--old-db-url', chroma.url, '--new-db-url', `qdrant+${qdrant.url}`, '--output', out], { env });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.overall_status, 'PASSED', JSON.stringify(r.json.checks.map((c: { name: string; status: string }) => [c.name, c.status])));
  });

  it('an existing collection with another size or distance is refused before any write', async () => {
    await qdrant.close();
    qdrant = await startQdrantStandin({ apiKey: API_KEY });
    qdrant.collections.set('q_ints', { size: 3, distance: 'Cosine', points: new Map() });
    const r = await migrate(['--source-url', chroma.url, '--target-url', `qdrant+${qdrant.url}`]);
    assert.equal(r.code, 2, r.stderr + r.stdout);
    assert.match(r.stderr, /collection q_ints exists on qdrant\+http:\/\/127\.0\.0\.1:\d+ with distance cosine and size 3, the migrated records need l2 and size 24: migrate into another name \(--rename q_ints=NEW\)/);
    assert.equal(qdrant.calls.filter((c) => c === 'upsert_points' || c === 'create_collection').length, 0, 'nothing written');
    const renamed = await migrate(['--source-url', chroma.url, '--target-url', `qdrant+${qdrant.url}`, '--filter-collection', 'q_ints', '--rename', 'q_ints=q_ints_v2']);
    assert.equal(renamed.code, 0, renamed.stderr + renamed.stdout);
    assert.equal(qdrant.collection('q_ints_v2')!.points.size, 150);
    assert.equal(qdrant.collections.get('q_ints')!.points.size, 0);
  });

  it('resume after a kill mid-import (3 batches in flight): exact counts, done batches not re-sent; restore removes what it created', async () => {
    await qdrant.close();
    qdrant = await startQdrantStandin({ apiKey: API_KEY });
    const cp = path.join(root, 'cp-resume');
    const args = ['migrate', '--yes', '--json', '--source-url', chroma.url, '--target-url', `qdrant+${qdrant.url}`, '--batch-size', '10', '--workers', '3',
      '--checkpoint-dir', cp, '--log-dir', path.join(root, 'logs')];
    const doneAtKill = await migrateKilledMidImport(args, cp, 5, env);
    const total = COLLECTIONS.reduce((n, c) => n + Math.ceil(c.count / 10), 0);
    const r = await runCli(args.concat('--resume'), { env });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.import.batchesSkipped, doneAtKill);
    assert.equal(r.json.import.batchesSent, total - doneAtKill);
    assert.deepEqual(Object.fromEntries([...qdrant.aliases.keys()].map((n) => [n, qdrant.collection(n)!.points.size])), { q_uuid: 120, q_ints: 150, q_free: 130 });

    const restore = await runCli(['restore', '--yes', '--json', '--backup', r.json.backupFile, '--target-url', `qdrant+${qdrant.url}`], { env });
    assert.equal(restore.code, 0, restore.stderr + restore.stdout);
    assert.deepEqual([...qdrant.collections.keys()], [], 'the collections the migration created are gone');
  });

  it('a metadata key equal to a reserved payload key is refused before any write', async () => {
    const col = await chromaClientFor(chroma.url).createCollection({ name: 'q_clash', embeddingFunction: null });
    await col.add({ ids: ['a', 'b'], embeddings: [[1, 2], [3, 4]], metadatas: [{ document: 'x' }, { ok: 1 }] });
    const fresh = await startQdrantStandin({ apiKey: API_KEY });
    try {
      const r = await migrate(['--source-url', chroma.url, '--target-url', `qdrant+${fresh.url}`, '--filter-collection', 'q_clash']);
      assert.equal(r.code, 2, r.stderr + r.stdout);
      assert.match(r.stderr, /record a: metadata key "document" collides with a payload key chroma-ferry reserves on Qdrant .*rename the field with a --transform; nothing was written/);
      assert.equal(fresh.collections.size, 0);
      assert.deepEqual(fresh.violations, []);
    } finally {
      await fresh.close();
      await chromaClientFor(chroma.url).deleteCollection({ name: 'q_clash' });
    }
  });

  it('the API key is in no output, log or checkpoint', async () => {
    const r = await migrate(['--source-url', chroma.url, '--target-url', `qdrant+${qdrant.url}`, '--verbose', '--filter-collection', 'q_free']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const wrong = await runCli(['migrate', '--yes', '--json', '--source-url', chroma.url, '--target-url', `qdrant+${qdrant.url}`, '--checkpoint-dir', path.join(root, 'cp-wrong'),
      '--log-dir', path.join(root, 'logs')], { env: { QDRANT_API_KEY: `${API_KEY}-wrong` } });
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /refused the API key; set QDRANT_API_KEY/);
    const texts = [r.stdout, r.stderr, wrong.stdout, wrong.stderr];
    for (const dir of [path.join(root, 'logs'), root]) {
      for (const f of await fs.readdir(dir, { recursive: true })) {
        const file = path.join(dir, f);
        if ((await fs.stat(file)).isFile() && /\.(jsonl?|md)$/.test(file)) texts.push(await fs.readFile(file, 'utf8'));
      }
    }
    for (const t of texts) assert.ok(!t.includes(API_KEY), 'the API key leaked');
  });
});
