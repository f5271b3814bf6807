/**
 * The counts an app's verify reads on the remote (lib/remote/sqlite-counts.ts): the constant
 * script run inside the Debian roots exactly as a host runs it (`sh -c CODE ferry ARGS`). On the
 * `python` profile it must give the deploy manifest's counts (read locally by
 * lib/chroma/sqlite-manifest.ts), also with queue entries not yet applied, without changing a byte
 * of the file; on `stock` (no python3) it says it skipped and why.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import pkg from 'node-sqlite3-wasm';
import { readSqliteManifest } from '../lib/chroma/sqlite-manifest.ts';
import { countCollectionsScript, parseRemoteCounts, type RemoteCounts } from '../lib/remote/sqlite-counts.ts';
import { sampleDbCopy } from './helpers/deploy-env.ts';
import { debianRoot, type DebianRoot, type RootVolume } from './helpers/debian-root.ts';

const { Database } = pkg;

async function countInRoot(root: DebianRoot, file: string): Promise<RemoteCounts> {
  const s = countCollectionsScript(file);
  const r = await root.run(s.code, [...s.args]);
  assert.equal(r.code, 0, r.stderr);
  return parseRemoteCounts(r.stdout);
}

const sha = async (file: string) => crypto.createHash('sha256').update(await fs.readFile(file)).digest('hex');

describe('collection counts read on the remote (python3 sqlite3, read-only)', () => {
  let py: DebianRoot | null = null;
  let stock: DebianRoot | null = null;
  let vol: RootVolume | undefined;
  before(async () => {
    py = await debianRoot('python');
    stock = await debianRoot('stock');
    if (py) vol = await py.makeVolume();
  });
  after(async () => {
    await vol?.remove();
  });
  const ready = (t: TestContext): boolean => {
    if (!py || !stock) t.skip('no Debian roots on this machine (see the warning above)');
    return !!(py && stock);
  };

  it('python profile: the manifest\'s counts, also with queue entries not yet applied; the file unchanged', async (t) => {
    if (!ready(t)) return;
    // Two collections, in a dir whose name has a space and characters a file: URI must escape.
    const dir = path.join(vol!.onDisk, 'live db ?#%');
    await sampleDbCopy(dir, [{ name: 'books', count: 30, dim: 8, space: 'cosine' }, { name: 'laws_2', count: 12, dim: 8, space: 'l2' }], 5);
    const file = path.join(dir, 'chroma.sqlite3');
    const inside = `${vol!.inside}/live db ?#%/chroma.sqlite3`;
    const expected = readSqliteManifest(dir).collections.map(({ tenant, database, name, count }) => ({ tenant, database, name, count }));
    assert.deepEqual(await countInRoot(py!, inside), { state: 'counted', collections: expected });

    // Queue entries past the metadata segment's max_seq_id, as after a crash between the two writes.
    const books = readSqliteManifest(dir).collections.find((c) => c.name === 'books')!;
    const db = new Database(file);
    try {
      const seg = db.get(`SELECT id FROM segments WHERE collection = ? AND scope = 'METADATA'`, [books.id]) as { id: string };
      const top = (db.get(`SELECT MAX(seq_id) AS m FROM embeddings_queue`) as { m: number | null }).m ?? 0;
      const maxSeq = (db.get(`SELECT seq_id FROM max_seq_id WHERE segment_id = ?`, [seg.id]) as { seq_id: number } | null)?.seq_id ?? 0;
      const from = Math.max(top, maxSeq) + 1;
      const existing = (db.all(`SELECT embedding_id FROM embeddings WHERE segment_id = ? ORDER BY embedding_id LIMIT 2`, [seg.id]) as { embedding_id: string }[])
        .map((r) => r.embedding_id);
      const topic = `persistent://default/default/${books.id}`;
      const ops: [number, string][] = [[3, existing[0]!], [0, 'q-new'], [0, existing[1]!], [2, 'q-ups'], [3, 'q-none'], [0, 'q-tmp'], [3, 'q-tmp']];
      ops.forEach(([op, id], i) => db.run(`INSERT INTO embeddings_queue (seq_id, operation, topic, id) VALUES (?, ?, ?, ?)`, [from + i, op, topic, id]));
    } finally {
      db.close();
    }
    const pending = readSqliteManifest(dir);
    assert.equal(pending.pendingWrites, 7);
    assert.equal(pending.collections.find((c) => c.name === 'books')!.count, books.count + 1);
    const before = await sha(file);
    const remote = await countInRoot(py!, inside);
    assert.deepEqual(remote, { state: 'counted', collections: pending.collections.map(({ tenant, database, name, count }) => ({ tenant, database, name, count })) });
    assert.equal(await sha(file), before, 'read-only: the file is unchanged');
    assert.deepEqual((await fs.readdir(dir)).filter((f) => f.startsWith('chroma.sqlite3')), ['chroma.sqlite3'], 'no journal, wal or shm left');
  });

  it('python profile: a file that is no database, a database that is not Chroma\'s, a missing file: unreadable, with the reason', async (t) => {
    if (!ready(t)) return;
    await fs.writeFile(path.join(vol!.onDisk, 'junk.sqlite3'), 'not a database at all, just some text '.repeat(10));
    const plain = new Database(path.join(vol!.onDisk, 'plain.sqlite3'));
    plain.exec('CREATE TABLE t (x INTEGER)');
    plain.close();
    assert.deepEqual(await countInRoot(py!, `${vol!.inside}/junk.sqlite3`), { state: 'unreadable', why: 'DatabaseError: file is not a database' });
    assert.deepEqual(await countInRoot(py!, `${vol!.inside}/plain.sqlite3`),
      { state: 'unreadable', why: 'ValueError: a SQLite database but not a Chroma one (no collections, databases, segments, embeddings table)' });
    assert.deepEqual(await countInRoot(py!, `${vol!.inside}/missing/chroma.sqlite3`), { state: 'unreadable', why: 'OperationalError: unable to open database file' });
  });

  it('stock profile (no python3): skipped, saying why', async (t) => {
    if (!ready(t)) return;
    assert.deepEqual(await countInRoot(stock!, '/data/chroma_db/chroma.sqlite3'), { state: 'skipped', why: 'the remote has no python3' });
  });
});
