/**
 * `restore` on a Qdrant target (the in-process, OpenAPI-validating stand-in): `--plan` lists the
 * writes the restore then makes, and a backup holding a record the target cannot store is refused
 * before the first write (exit 2, one line) instead of failing after the collections it replaces
 * were dropped.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { JsonlEndpoint } from '../lib/migrate/jsonl-endpoint.ts';
import { QdrantEndpoint } from '../lib/migrate/qdrant-endpoint.ts';
import type { MigrationRecord } from '../lib/migrate/types.ts';
import { runCli } from './helpers/deploy-env.ts';
import { startQdrantStandin, type QdrantStandin } from './helpers/qdrant-standin.ts';

const WRITES = new Set(['delete_collection', 'create_collection', 'upsert_points']);

function records(prefix: string, n: number, meta: (i: number) => Record<string, string | number> = () => ({})): MigrationRecord[] {
  return Array.from({ length: n }, (_, i) => ({ id: `${prefix}-${i}`, embedding: [i + 1, 2, 3, 4], document: `${prefix} ${i}`, metadata: { n: i, ...meta(i) } }));
}

describe('restore onto Qdrant: --plan, and what the target cannot store', () => {
  let root: string;
  let qdrant: QdrantStandin;
  before(async () => { root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-restore-plan-')); });
  after(() => fs.rm(root, { recursive: true, force: true }));
  beforeEach(async () => {
    qdrant = await startQdrantStandin();
    // The migrated state: books holds the migration's 6 records, books_v2 was created by it.
    const target = new QdrantEndpoint(`qdrant+${qdrant.url}`, undefined);
    await target.connect('--target-url');
    for (const [name, n] of [['books', 6], ['books_v2', 2]] as const) {
      await target.ensureCollection({ name, space: 'cosine', metadata: null, dimension: 4 });
      await target.upsert(name, records(`migrated-${name}`, n));
    }
    qdrant.calls.length = 0;
  });
  afterEach(async () => {
    assert.deepEqual(qdrant.violations, [], 'every request matched the Qdrant contract');
    await qdrant.close();
  });

  async function backupFile(name: string, books: MigrationRecord[]): Promise<string> {
    const file = path.join(root, name);
    const e = new JsonlEndpoint(file);
    await e.openForWriting({ resume: false, touched: ['books', 'books_v2'] });
    await e.ensureCollection({ name: 'books', space: 'cosine', metadata: null, dimension: 4 });
    await e.upsert('books', books);
    await e.close();
    return file;
  }

  const restore = (backup: string, ...extra: string[]) => runCli(['restore', '--backup', backup, '--target-url', `qdrant+${qdrant.url}`, ...extra]);

  it('--plan lists the writes and makes none; the restore then makes exactly those', async () => {
    const backup = await backupFile('backup.jsonl', records('book', 3));
    const plan = await restore(backup, '--plan', '--json');
    assert.equal(plan.code, 0, plan.stderr + plan.stdout);
    assert.deepEqual(qdrant.calls.filter((c) => WRITES.has(c)), [], 'the plan wrote nothing');
    const does = Object.fromEntries(plan.json.steps.map((s: { name: string; does: string[] }) => [s.name, s.does]));
    const target = `qdrant+${qdrant.url}`;
    assert.deepEqual(does.remove, [`delete collection books_v2 on ${target} (created by the migration: touched, and not in the backup)`]);
    assert.deepEqual(does.recreate, [
      `drop collection books on ${target} (re-created from the backup next)`,
      `create collection books on ${target} with the backup's distance, HNSW settings and metadata`,
      'upsert the backup\'s 3 records of books in batches of up to 512',
    ]);
    const text = await restore(backup, '--plan');
    assert.match(text.stdout, /^restore plan: .*backup\.jsonl -> qdrant\+http:\/\/127\.0\.0\.1:\d+; nothing has been done\n {2}1\. connect: /);

    const r = await restore(backup, '--yes', '--json');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(qdrant.calls.filter((c) => WRITES.has(c)), ['delete_collection', 'delete_collection', 'create_collection', 'upsert_points']);
    assert.deepEqual([...qdrant.collections.keys()], ['books']);
    assert.equal(qdrant.collections.get('books')!.points.size, 3);
  });

  it('validate --plan --auto-rollback shows the restore a FAILED gate would run, and writes nothing', async () => {
    const backup = await backupFile('gate-backup.jsonl', records('book', 3));
    const oldDb = await backupFile('old.jsonl', records('book', 3));
    const r = await runCli(['validate', '--plan', '--json', '--auto-rollback', '--old-db-url', oldDb, '--new-db-url', `qdrant+${qdrant.url}`, '--backup', backup,
      '--output', path.join(root, 'gate', 'report.md')]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(r.json.steps.map((s: { name: string }) => s.name), ['connect', 'expected', 'compare']);
    assert.deepEqual(r.json.steps[1].does[0], `read books (3 records) from ${oldDb} through the transform`);
    const restoreSteps = Object.fromEntries(r.json.rollback.restore.steps.map((s: { name: string; does: string[] }) => [s.name, s.does]));
    assert.match(restoreSteps.remove[0], /^delete collection books_v2 on qdrant\+http/);
    assert.equal(restoreSteps.recreate.length, 3);
    assert.deepEqual(qdrant.calls.filter((c) => WRITES.has(c)), [], 'the plan wrote nothing');
    await assert.rejects(fs.access(path.join(root, 'gate', 'report.json')), 'no report written');
  });

  it('a backed-up record the target cannot store: refused before any write (exit 2, one line), the migrated data still there', async () => {
    // "document" is a payload key chroma-ferry reserves on Qdrant: such a record cannot be stored unchanged.
    const backup = await backupFile('clash.jsonl', records('book', 3, (i): Record<string, string> => (i === 1 ? { document: 'a field of its own' } : {})));
    for (const extra of [['--plan'], ['--yes', '--json']]) {
      const r = await restore(backup, ...extra);
      assert.equal(r.code, 2, `${extra.join(' ')}: ${r.stderr}${r.stdout}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /--backup .*clash\.jsonl: collection books: record book-1: metadata key "document" collides with a payload key chroma-ferry reserves on Qdrant .*; restore writes records unchanged, so nothing was written/);
    }
    assert.deepEqual(qdrant.calls.filter((c) => WRITES.has(c)), [], 'nothing written');
    assert.deepEqual(Object.fromEntries([...qdrant.collections].map(([n, c]) => [n, c.points.size])), { books: 6, books_v2: 2 }, 'the migrated data is untouched');
  });
});
