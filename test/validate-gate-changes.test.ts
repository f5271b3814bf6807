/**
 * The gate sees every change (issue 17, section 2), against real Chroma servers: a seed-schema
 * migration with a rename, untouched, PASSES with every record compared; then one change at a time
 * on the new database (a metadata value, a document, a number turned into a string, a removed key,
 * an added key), none of which the seed's eight checks notice, FAILS record_equality with the
 * right count and ids per kind of difference, in report.json, report.md and the plain summary.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Collection, Metadata } from 'chromadb';
import { chromaClientFor } from '../lib/chroma/client.ts';
import { startChromaServer, type ChromaServer } from '../lib/chroma/server.ts';
import { DIFFERENCE_KINDS } from '../lib/gate/record-diff.ts';
import { addRecords } from '../testkit/sample-db.ts';
import { runCli } from './helpers/deploy-env.ts';

const SOURCES = [
  { name: 'acme_personality', space: 'cosine' as const },
  { name: 'acme_humor', space: 'l2' as const },
  { name: 'acme_notes', space: 'l2' as const },
];
const PER_COLLECTION = 40;
const DIM = 8;

type Rec = { id: string; embedding: number[]; document: string | null; metadata: Metadata };

describe('the gate compares every document and metadata value', () => {
  let root: string;
  let source: ChromaServer;
  let target: ChromaServer;
  let cpDir: string;

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-gate-changes-'));
    source = await startChromaServer({ path: path.join(root, 'old') });
    target = await startChromaServer({ path: path.join(root, 'new') });
    for (const s of SOURCES) {
      await chromaClientFor(source.url).createCollection({ name: s.name, embeddingFunction: null, configuration: { hnsw: { space: s.space } } });
      await addRecords(source.url, s.name, { start: 0, count: PER_COLLECTION, dim: DIM, seed: 5 });
    }
    cpDir = path.join(root, 'cp');
    const m = await runCli(['migrate', '--yes', '--json', '--source-url', source.url, '--target-url', target.url, '--transform', 'seed-schema',
      '--prefix', 'acme', '--rename', 'acme_humor=jokes', '--checkpoint-dir', cpDir, '--log-dir', path.join(root, 'logs')]);
    assert.equal(m.code, 0, m.stderr + m.stdout);
  });
  after(async () => {
    await source?.stop().catch(() => undefined);
    await target?.stop().catch(() => undefined);
    await fs.rm(root, { recursive: true, force: true });
  });

  const gate = async (extra: string[] = ['--json']) => {
    const out = path.join(root, `report-${Math.random().toString(36).slice(2)}.md`);
    const r = await runCli(['validate', '--old-db-url', source.url, '--new-db-url', target.url, '--checkpoint-dir', cpDir, '--output', out, ...extra]);
    return { ...r, out };
  };
  const col = (name: string) => chromaClientFor(target.url).getCollection({ name, embeddingFunction: undefined } as never) as Promise<Collection>;

  /** Replace records of the new database by `change` of them (delete + add: nothing merged); returns what puts them back. */
  const rewrite = async (name: string, ids: string[], change: (r: Rec) => Rec): Promise<() => Promise<void>> => {
    const c = await col(name);
    const got = await c.get({ ids, include: ['embeddings', 'documents', 'metadatas'] as never });
    assert.deepEqual([...got.ids].sort(), [...ids].sort(), `records ${ids.join(', ')} are in ${name}`);
    const originals: Rec[] = got.ids.map((id, i) => ({ id, embedding: Array.from(got.embeddings[i]!), document: got.documents[i] ?? null, metadata: got.metadatas[i]! }));
    const put = async (recs: Rec[]) => {
      await c.delete({ ids: recs.map((r) => r.id) });
      await c.add({ ids: recs.map((r) => r.id), embeddings: recs.map((r) => r.embedding), documents: recs.map((r) => r.document ?? ''), metadatas: recs.map((r) => r.metadata) });
    };
    await put(originals.map((r) => change(structuredClone(r))));
    return () => put(originals);
  };

  it('an untouched migration with a rename transform PASSES, every record compared, no difference', async () => {
    const r = await gate();
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.overall_status, 'PASSED');
    assert.deepEqual(r.json.checks.map((c: { status: string }) => c.status), Array(9).fill('PASSED'));
    const eq = r.json.checks.find((c: { name: string }) => c.name === 'record_equality');
    assert.equal(eq.figures.compared, SOURCES.length * PER_COLLECTION);
    assert.equal(eq.figures.records_changed, 0);
    for (const k of DIFFERENCE_KINDS) assert.deepEqual(r.json.differences[k], { records: 0, first_ids: [] }, k);
    assert.deepEqual(r.json.checks.find((c: { name: string }) => c.name === 'count_verification').figures.expected, SOURCES.length * PER_COLLECTION);
  });

  const changes: { name: string; kind: string; collection: string; ids: string[]; change: (r: Rec) => Rec; detail: RegExp }[] = [
    {
      name: 'metadata values replaced (source=talk_TAMPERED, score 0.99)', kind: 'metadata_value_changed',
      collection: 'jokes', ids: ['acme_humor-000007', 'acme_humor-000003'],
      change: (r) => ({ ...r, metadata: { ...r.metadata, source: 'talk_TAMPERED', score: 0.99 } }),
      detail: /^jokes\/acme_humor-000003: score = 0\.99, expected [\d.]+; source = "talk_TAMPERED", expected "acme_humor"$/,
    },
    {
      name: 'a document replaced', kind: 'document_changed', collection: 'acme_corpus', ids: ['acme_notes-000011'],
      change: (r) => ({ ...r, document: 'tampered text' }),
      detail: /^acme_corpus\/acme_notes-000011: document "tampered text", expected "acme_notes #11: [^"]*"$/,
    },
    {
      name: 'a number turned into a string (0.99 vs "0.99")', kind: 'metadata_type_changed', collection: 'acme_personality', ids: ['acme_personality-000005'],
      change: (r) => ({ ...r, metadata: { ...r.metadata, score: String(r.metadata.score) } }),
      detail: /^acme_personality\/acme_personality-000005: score = "[\d.]+" \(string\), expected [\d.]+ \(number\)$/,
    },
    {
      name: 'a metadata key removed', kind: 'metadata_key_removed', collection: 'jokes', ids: ['acme_humor-000020'],
      change: (r) => { const { lang: _drop, ...rest } = r.metadata; return { ...r, metadata: rest }; },
      detail: /^jokes\/acme_humor-000020: lang removed \(expected "(en|es|it)"\)$/,
    },
    {
      name: 'a metadata key added', kind: 'metadata_key_added', collection: 'acme_corpus', ids: ['acme_notes-000002'],
      change: (r) => ({ ...r, metadata: { ...r.metadata, reviewed: true } }),
      detail: /^acme_corpus\/acme_notes-000002: reviewed = true added$/,
    },
  ];

  for (const x of changes) {
    it(`${x.name} -> FAILED, record_equality ${x.kind} ${x.ids.length} with its ids; the eight seed checks see nothing`, async () => {
      const undo = await rewrite(x.collection, x.ids, x.change);
      try {
        const r = await gate();
        assert.equal(r.code, 1, r.stderr + r.stdout);
        assert.equal(r.json.overall_status, 'FAILED');
        const statuses = Object.fromEntries(r.json.checks.map((c: { name: string; status: string }) => [c.name, c.status]));
        const seedChecks = Object.keys(statuses).filter((n) => n !== 'record_equality');
        assert.equal(seedChecks.length, 8);
        for (const n of seedChecks) assert.equal(statuses[n], 'PASSED', `${n}: ${JSON.stringify(statuses)}`);
        const eq = r.json.checks.find((c: { name: string }) => c.name === 'record_equality');
        assert.equal(eq.status, 'FAILED');
        assert.equal(eq.figures.records_changed, x.ids.length);
        assert.equal(eq.figures[x.kind], x.ids.length);
        assert.match(eq.details[0], x.detail);
        const ids = x.ids.map((id) => `${x.collection}/${id}`).sort();
        for (const k of DIFFERENCE_KINDS) {
          assert.deepEqual(r.json.differences[k], k === x.kind ? { records: ids.length, first_ids: ids } : { records: 0, first_ids: [] }, k);
        }
        assert.match(r.json.rollback_reason, /record_equality failed: Record Content Changed/);
        const md = await fs.readFile(r.out, 'utf8');
        assert.ok(md.includes(`| ${x.kind} | ${ids.length} | ${ids.map((id) => `\`${id}\``).join(', ')} |`), md);
        assert.match(md, /\| 9 \| record_equality \| ❌ FAILED \|/);
        const plain = await gate([]);
        assert.equal(plain.code, 1, plain.stderr);
        assert.ok(plain.stdout.includes(`\n  differences: ${x.kind}=${ids.length} (${ids.join(', ')})\n`), plain.stdout);
      } finally {
        await undo();
      }
    });
  }

  it('every change at once: each kind counted apart, a record with two kinds counted under both', async () => {
    const undos = [
      await rewrite('jokes', ['acme_humor-000001'], (r) => ({ ...r, document: 'changed', metadata: { ...r.metadata, added: 1 } })),
      await rewrite('acme_corpus', ['acme_notes-000004'], (r) => ({ ...r, metadata: { ...r.metadata, score: 0.99 } })),
    ];
    const c = await col('acme_personality');
    const gone = await c.get({ ids: ['acme_personality-000009'], include: ['embeddings', 'documents', 'metadatas'] as never });
    await c.delete({ ids: gone.ids });
    try {
      const r = await gate();
      assert.equal(r.code, 1, r.stderr + r.stdout);
      const d = r.json.differences;
      assert.deepEqual(d.document_changed, { records: 1, first_ids: ['jokes/acme_humor-000001'] });
      assert.deepEqual(d.metadata_key_added, { records: 1, first_ids: ['jokes/acme_humor-000001'] });
      assert.deepEqual(d.metadata_value_changed, { records: 1, first_ids: ['acme_corpus/acme_notes-000004'] });
      assert.deepEqual(d.missing, { records: 1, first_ids: ['acme_personality/acme_personality-000009'] });
      assert.equal(r.json.checks.find((x: { name: string }) => x.name === 'record_equality').figures.records_changed, 2);
    } finally {
      for (const u of undos) await u();
      await c.add({ ids: gone.ids, embeddings: gone.embeddings as number[][], documents: gone.documents as string[], metadatas: gone.metadatas as Metadata[] });
    }
  });
});
