import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AdminClient, ChromaClient } from 'chromadb';
import pkg from 'node-sqlite3-wasm';
import { UserError } from '../lib/common/errors.ts';
import { readSqliteManifest } from '../lib/chroma/sqlite-manifest.ts';
import { readMigrations } from '../lib/chroma/migrations.ts';
import { manifestOfSnapshot, readSourceSqlite, readSourceSqliteInWorker } from '../lib/chroma/source-sqlite.ts';
import { snapshotSource } from '../lib/archive/snapshot.ts';

const { Database } = pkg;
const CLI = path.resolve('node_modules/chromadb/dist/cli.mjs');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function startServer(dir: string): Promise<{ child: ChildProcess; port: number; stop: () => Promise<void> }> {
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, 'run', '--path', dir, '--host', '127.0.0.1', '--port', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => { log += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { log += d.toString(); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`chroma exited early: ${log}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/api/v2/heartbeat`);
      if (r.ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`chroma did not answer the heartbeat within 30 s: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
  };
  return { child, port, stop };
}

async function fileDigest(file: string): Promise<string> {
  const st = await fs.stat(file);
  const bytes = await fs.readFile(file);
  return `${createHash('sha256').update(bytes).digest('hex')} ${st.mtimeMs} ${st.size} ${st.ino}`;
}

const emb = (i: number, dim: number) => Array.from({ length: dim }, (_, k) => Math.sin(i * 7 + k));

let tmp: string;
let dbDir: string;
let server: Awaited<ReturnType<typeof startServer>> | undefined;
const expected = new Map<string, number>(); // `${database}/${name}` -> count reported by the server

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-sqlite-test-'));
  dbDir = path.join(tmp, 'persist');
  server = await startServer(dbDir);
  const { port } = server;
  const client = new ChromaClient({ host: '127.0.0.1', port, ssl: false });

  const alpha = await client.createCollection({ name: 'alpha', embeddingFunction: null, configuration: { hnsw: { space: 'cosine' } } });
  const ids = Array.from({ length: 120 }, (_, i) => `a${i}`);
  await alpha.add({
    ids,
    embeddings: ids.map((_, i) => emb(i, 8)),
    documents: ids.map((id) => `document ${id}`),
    metadatas: ids.map((_, i) => ({ i, even: i % 2 === 0 })),
  });
  await alpha.delete({ ids: ['a0', 'a1', 'a2', 'a3', 'a4', 'does-not-exist'] });
  await alpha.upsert({ ids: ['a10', 'a11', 'new-1', 'new-2'], embeddings: [emb(1, 8), emb(2, 8), emb(3, 8), emb(4, 8)] });
  await alpha.delete({ where: { even: true } });

  const beta = await client.createCollection({ name: 'beta', embeddingFunction: null, configuration: { hnsw: { space: 'ip' } } });
  await beta.add({ ids: ['b1', 'b2', 'b3'], embeddings: [emb(1, 3), emb(2, 3), emb(3, 3)] });
  await beta.update({ ids: ['b2'], embeddings: [emb(9, 3)] });

  await client.createCollection({ name: 'empty', embeddingFunction: null });

  const admin = new AdminClient({ host: '127.0.0.1', port, ssl: false });
  await admin.createDatabase({ name: 'other', tenant: 'default_tenant' });
  const other = new ChromaClient({ host: '127.0.0.1', port, ssl: false, database: 'other' });
  const gamma = await other.createCollection({ name: 'gamma', embeddingFunction: null });
  await gamma.add({ ids: ['g1', 'g2'], embeddings: [emb(1, 2), emb(2, 2)] });
  await gamma.delete({ ids: ['g1'] });

  expected.set('default_database/alpha', await alpha.count());
  expected.set('default_database/beta', await beta.count());
  expected.set('default_database/empty', 0);
  expected.set('other/gamma', await gamma.count());
});

after(async () => {
  await server?.stop();
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('readSqliteManifest', () => {
  test('matches the server\'s counts while it is running, and does not touch the file', async () => {
    const sqlite = path.join(dbDir, 'chroma.sqlite3');
    const beforeFile = await fileDigest(sqlite);
    const beforeDir = (await fs.readdir(dbDir)).sort();
    const m = readSqliteManifest(dbDir);
    assert.equal(await fileDigest(sqlite), beforeFile);
    assert.deepEqual((await fs.readdir(dbDir)).sort(), beforeDir);

    assert.deepEqual(
      m.collections.map((c) => [c.tenant, c.database, c.name]),
      [
        ['default_tenant', 'default_database', 'alpha'],
        ['default_tenant', 'default_database', 'beta'],
        ['default_tenant', 'default_database', 'empty'],
        ['default_tenant', 'other', 'gamma'],
      ],
    );
    for (const c of m.collections) {
      assert.equal(c.count, expected.get(`${c.database}/${c.name}`), `${c.database}/${c.name}`);
      assert.match(c.id, /^[0-9a-f-]{36}$/);
    }
    // 120 added, 5 deleted, 2 new via upsert, then every remaining even i deleted (a10 was even).
    assert.equal(expected.get('default_database/alpha'), 120 - 5 + 2 - 57);
    const byName = new Map(m.collections.map((c) => [c.name, c]));
    assert.equal(byName.get('alpha')!.space, 'cosine');
    assert.equal(byName.get('alpha')!.dimension, 8);
    assert.equal(byName.get('beta')!.space, 'ip');
    assert.equal(byName.get('beta')!.dimension, 3);
    assert.equal(byName.get('empty')!.space, 'l2');
    assert.equal(byName.get('empty')!.dimension, null);
    assert.equal(byName.get('gamma')!.count, 1);
    assert.equal(m.totalRecords, [...expected.values()].reduce((a, b) => a + b, 0));
    assert.equal(m.pendingWrites, 0);
    assert.deepEqual(m.schemaVersion.map((s) => s.dir), ['embeddings_queue', 'metadb', 'sysdb']);
    assert.ok(m.schemaVersion.every((s) => s.version >= 1));
  });

  test('gives the same answer after the server stops, still without touching the file', async () => {
    const live = readSqliteManifest(dbDir);
    await server!.stop();
    const sqlite = path.join(dbDir, 'chroma.sqlite3');
    const beforeFile = await fileDigest(sqlite);
    const stopped = readSqliteManifest(dbDir);
    assert.equal(await fileDigest(sqlite), beforeFile);
    assert.deepEqual(stopped.collections, live.collections);
  });

  test('folds queue entries not yet applied to the metadata segment into the counts', async () => {
    // A copy whose queue has entries beyond alpha's max_seq_id, as after a crash between the
    // queue write and the metadata segment update.
    const copy = path.join(tmp, 'pending');
    await fs.mkdir(copy);
    await fs.copyFile(path.join(dbDir, 'chroma.sqlite3'), path.join(copy, 'chroma.sqlite3'));
    const base = readSqliteManifest(copy);
    const alpha = base.collections.find((c) => c.name === 'alpha')!;
    const db = new Database(path.join(copy, 'chroma.sqlite3'));
    try {
      const seg = db.get(`SELECT id FROM segments WHERE collection = ? AND scope = 'METADATA'`, [alpha.id]) as { id: string };
      const maxSeq = (db.get(`SELECT seq_id FROM max_seq_id WHERE segment_id = ?`, [seg.id]) as { seq_id: number }).seq_id;
      const top = (db.get(`SELECT MAX(seq_id) AS m FROM embeddings_queue`) as { m: number }).m;
      assert.ok(top >= maxSeq);
      const existing = (db.all(`SELECT embedding_id FROM embeddings WHERE segment_id = ? ORDER BY embedding_id LIMIT 3`, [seg.id]) as { embedding_id: string }[])
        .map((r) => r.embedding_id);
      const topic = (db.get(`SELECT topic FROM embeddings_queue WHERE topic LIKE ? LIMIT 1`, [`%/${alpha.id}`]) as { topic: string }).topic;
      const ops: [number, string][] = [
        [3, existing[0]!], // delete existing: -1
        [0, 'p-new'], //      add new: +1
        [0, existing[1]!], // add existing: ignored
        [2, 'p-ups'], //      upsert new: +1
        [3, 'p-none'], //     delete missing: no-op
        [1, existing[2]!], // update: no change
        [0, 'p-tmp'], //      add then delete: net 0
        [3, 'p-tmp'],
      ];
      ops.forEach(([op, id], i) => {
        db.run(`INSERT INTO embeddings_queue (seq_id, operation, topic, id) VALUES (?, ?, ?, ?)`, [top + 1 + i, op, topic, id]);
      });
    } finally {
      db.close();
    }
    const m = readSqliteManifest(copy);
    assert.equal(m.pendingWrites, 8);
    assert.equal(m.collections.find((c) => c.name === 'alpha')!.count, alpha.count + 1);
    assert.equal(m.totalRecords, base.totalRecords + 1);
  });

  test('explains a missing, non-SQLite or non-Chroma file with a UserError', async () => {
    const none = path.join(tmp, 'none');
    await fs.mkdir(none);
    assert.throws(() => readSqliteManifest(none), (e: unknown) => e instanceof UserError && /has no chroma\.sqlite3/.test(e.message));
    assert.throws(() => readSqliteManifest(path.join(tmp, 'missing-dir')), UserError);

    const junk = path.join(tmp, 'junk');
    await fs.mkdir(junk);
    await fs.writeFile(path.join(junk, 'chroma.sqlite3'), 'this is not a database, just text that is long enough to have a header......................................................');
    assert.throws(() => readSqliteManifest(junk), (e: unknown) => e instanceof UserError && /not a SQLite database/.test(e.message));

    const plain = path.join(tmp, 'plain');
    await fs.mkdir(plain);
    const db = new Database(path.join(plain, 'chroma.sqlite3'));
    db.exec('CREATE TABLE t (x INTEGER)');
    db.close();
    assert.throws(() => readSqliteManifest(plain), (e: unknown) => e instanceof UserError && /not a Chroma one/.test(e.message));
  });
});

describe('readSourceSqlite (the deploy\'s one read of the source: migrations + manifest)', () => {
  test('one pass gives what the two readers give, on this thread and on a worker', async () => {
    await server!.stop();
    const src = path.join(tmp, 'one-pass');
    await fs.mkdir(src);
    await fs.copyFile(path.join(dbDir, 'chroma.sqlite3'), path.join(src, 'chroma.sqlite3'));
    const read = readSourceSqlite(src);
    assert.deepEqual(read.migrations, readMigrations(src));
    assert.deepEqual(read.manifest, readSqliteManifest(src));
    assert.deepEqual(await readSourceSqliteInWorker(src), read);
  });

  test('its manifest serves the snapshot taken after it, unless the source changed in between', async () => {
    const src = path.join(tmp, 'reused');
    await fs.mkdir(src);
    await fs.copyFile(path.join(dbDir, 'chroma.sqlite3'), path.join(src, 'chroma.sqlite3'));
    const read = readSourceSqlite(src);
    const same = await snapshotSource(src, path.join(tmp, 'reused-snap-1'));
    assert.deepEqual(manifestOfSnapshot(read, src, same.dir), read.manifest);
    assert.ok(read.manifest);

    // A write lands in the source after the read (a queued add for alpha): the snapshot is read again.
    const alpha = read.manifest.collections.find((c) => c.name === 'alpha')!;
    const db = new Database(path.join(src, 'chroma.sqlite3'));
    try {
      const top = (db.get(`SELECT MAX(seq_id) AS m FROM embeddings_queue`) as { m: number }).m;
      const topic = (db.get(`SELECT topic FROM embeddings_queue WHERE topic LIKE ? LIMIT 1`, [`%/${alpha.id}`]) as { topic: string }).topic;
      db.run(`INSERT INTO embeddings_queue (seq_id, operation, topic, id) VALUES (?, 0, ?, 'after-the-read')`, [top + 1, topic]);
    } finally {
      db.close();
    }
    const changed = await snapshotSource(src, path.join(tmp, 'reused-snap-2'));
    assert.equal(manifestOfSnapshot(read, src, changed.dir), undefined);
    assert.equal(readSqliteManifest(changed.dir).collections.find((c) => c.name === 'alpha')!.count, alpha.count + 1);
    // Nor does it serve a snapshot of another database while the source is unchanged.
    assert.equal(manifestOfSnapshot(readSourceSqlite(src), src, same.dir), undefined);
  });

  test('a SQLite file with migrations but not the rest of Chroma\'s tables: migrations, no manifest', async () => {
    const partial = path.join(tmp, 'migrations-only');
    await fs.mkdir(partial);
    const db = new Database(path.join(partial, 'chroma.sqlite3'));
    db.exec(`CREATE TABLE migrations (dir TEXT, version INTEGER, filename TEXT, sql TEXT, hash TEXT); INSERT INTO migrations VALUES ('sysdb', 9, 'x', '', '')`);
    db.close();
    const read = readSourceSqlite(partial);
    assert.deepEqual(read.migrations, { sysdb: 9 });
    assert.equal(read.manifest, null);
    assert.equal(manifestOfSnapshot(read, partial, partial), undefined);
  });
});
