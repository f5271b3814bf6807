/**
 * Per-collection record counts read straight from a persist dir's `chroma.sqlite3`, without starting
 * Chroma (a server may migrate the directory in place) and without writing anything in the directory.
 *
 * How the file is read without touching it: node-sqlite3-wasm's VFS implements SQLite locks by
 * creating a `<db>.lock` DIRECTORY next to the database (even for read-only connections), which
 * would write into the user's persist dir and does not interoperate with the POSIX locks of the
 * Chroma server. So the database is opened through a symlink in a private temp dir (the lock
 * directory lands there), read-only, and consistency is checked optimistically instead: the
 * file's identity, size, mtime and SQLite change counter (header bytes 24..27, bumped by every
 * commit in rollback-journal mode) are compared before and after the read, with no hot journal,
 * and the read is retried if a commit happened in between.
 */
import { openSync, readSync, writeSync, closeSync, statSync, mkdtempSync, symlinkSync, rmSync, copyFileSync, type Stats } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type pkg from 'node-sqlite3-wasm';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import v8 from 'node:v8';
import { UserError } from '../common/errors.ts';

type Db = InstanceType<typeof pkg.Database>;
/**
 * SQLite's WebAssembly (1.2 MB) runs on V8's baseline compiler (Liftoff) only. By default V8 also
 * compiles its hot functions again with the optimizing compiler, in the background, on first use:
 * on a 100 MB persist dir that added ~40 MB to the peak memory of a read (source read on its
 * worker: +65 MB over the process's own vs +25 MB Liftoff only) and ~200 ms of CPU (392 vs 180 ms),
 * and the reads themselves were not faster (counts 135 vs 102 ms; a 122k-row scan 436-483 vs
 * 254-401 ms: the time goes into crossing between JS and WebAssembly). The flag is process-wide and
 * read when a module is compiled; nothing else in this tool runs WebAssembly.
 */
function useBaselineWasmCompiler(): void {
  v8.setFlagsFromString('--liftoff-only');
}

/** node-sqlite3-wasm loaded on first use: its WebAssembly instance costs ~15 MB once loaded. */
const loadSqlite = (): typeof pkg => {
  useBaselineWasmCompiler();
  return createRequire(import.meta.url)('node-sqlite3-wasm') as typeof pkg;
};

export type DistanceSpace = 'l2' | 'cosine' | 'ip';

export interface CollectionCount {
  tenant: string;
  database: string;
  name: string;
  id: string;
  count: number;
  dimension: number | null;
  space: DistanceSpace;
}

export interface SqliteManifest {
  /** Sorted by tenant, database, name. */
  collections: CollectionCount[];
  totalRecords: number;
  /** Highest applied migration per migrations dir ('embeddings_queue', 'metadb', 'sysdb'), sorted by dir. */
  schemaVersion: { dir: string; version: number }[];
  /** Queue entries with seq_id greater than their collection's metadata segment's max_seq_id (already folded into `count`). */
  pendingWrites: number;
}

export const SQLITE_FILE = 'chroma.sqlite3';
const SPACES = new Set<string>(['l2', 'cosine', 'ip']);
const REQUIRED_TABLES = ['collections', 'databases', 'segments', 'embeddings', 'migrations'];
const MAX_ATTEMPTS = 5;

/** embeddings_queue.operation values (chromadb Operation enum). */
const OP_ADD = 0;
const OP_UPDATE = 1;
const OP_UPSERT = 2;
const OP_DELETE = 3;

/** What identifies one version of chroma.sqlite3: any commit changes one of these (see the top of this file). */
export interface SqliteFileState {
  ino: number;
  size: number;
  mtimeMs: number;
  changeCounter: number;
  walMode: boolean;
}

function readHeader(file: string): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(100);
    const n = readSync(fd, buf, 0, 100, 0);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

function fileState(file: string, persistDir: string): SqliteFileState {
  let st: Stats;
  try {
    st = statSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new UserError(`${persistDir} has no ${SQLITE_FILE}: point at a Chroma persist directory (the --path given to \`chroma run\`)`);
    }
    throw e;
  }
  if (!st.isFile()) throw new UserError(`${file} is not a regular file: point at a Chroma persist directory`);
  const header = readHeader(file);
  if (header.length < 100 || header.subarray(0, 16).toString('latin1') !== 'SQLite format 3\0') {
    throw new UserError(`${file} is not a SQLite database: point at a Chroma persist directory (it holds chroma.sqlite3 and one directory per vector segment)`);
  }
  return {
    ino: st.ino,
    size: st.size,
    mtimeMs: st.mtimeMs,
    changeCounter: header.readUInt32BE(24),
    walMode: header[18] === 2 || header[19] === 2,
  };
}

function nonEmpty(file: string): boolean {
  try {
    return statSync(file).size > 0;
  } catch {
    return false;
  }
}

/** The state of `persistDir/chroma.sqlite3` now (a UserError when it is missing or not SQLite). */
export function sqliteFileState(persistDir: string): SqliteFileState {
  return fileState(path.join(path.resolve(persistDir), SQLITE_FILE), persistDir);
}

/** The same file, unchanged: identity, size, mtime and change counter. */
export function sameSqliteFile(a: SqliteFileState, b: SqliteFileState): boolean {
  return a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs && a.changeCounter === b.changeCounter;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Read the per-collection manifest of `persistDir/chroma.sqlite3`, read-only, never writing in persistDir. */
export function readSqliteManifest(persistDir: string): SqliteManifest {
  return readChromaSqlite(persistDir, manifestOf);
}

/** An open, read-only connection to a persist dir's chroma.sqlite3 (node-sqlite3-wasm). */
export type SqliteDb = Db;

/**
 * Run `read` on `persistDir/chroma.sqlite3` opened read-only, as described at the top of this file
 * (never writing in persistDir; retried while a commit lands during the read). `read` gets the
 * connection and the file's path, for its messages.
 */
export function readChromaSqlite<T>(persistDir: string, read: (db: Db, file: string) => T): T {
  return readChromaSqliteAt(persistDir, read).result;
}

/** readChromaSqlite, with the state of the file the result was read from (unchanged during the read). */
export function readChromaSqliteAt<T>(persistDir: string, read: (db: Db, file: string) => T): { result: T; file: SqliteFileState } {
  const dir = path.resolve(persistDir);
  try {
    if (!statSync(dir).isDirectory()) throw new UserError(`${persistDir} is not a directory: point at a Chroma persist directory`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new UserError(`${persistDir} does not exist: point at a Chroma persist directory (the --path given to \`chroma run\`)`);
    throw e;
  }
  const file = path.join(dir, SQLITE_FILE);
  const journal = `${file}-journal`;
  const wal = `${file}-wal`;

  let lastError: unknown;
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    if (attempt > 1) sleepSync(50 * attempt);
    const before = fileState(file, persistDir);
    if (before.walMode && nonEmpty(wal)) {
      throw new UserError(`${wal} holds un-checkpointed writes: stop the Chroma server using ${persistDir} (it checkpoints on close) and retry`);
    }
    if (nonEmpty(journal)) { lastError = new Error('write transaction in progress'); continue; }
    let result: T;
    try {
      result = readOnce(file, before.walMode, read);
    } catch (e) {
      if (e instanceof UserError) {
        // Only believe "not a Chroma db" if the file did not change under us.
        const after = fileState(file, persistDir);
        if (sameSqliteFile(before, after) && !nonEmpty(journal)) throw e;
      }
      lastError = e;
      continue;
    }
    const after = fileState(file, persistDir);
    if (sameSqliteFile(before, after) && !nonEmpty(journal)) return { result, file: after };
    lastError = new Error('database changed during the read');
  }
  throw new UserError(
    `${file} kept changing while it was being read (${lastError instanceof Error ? lastError.message : String(lastError)}): stop the writer or retry when the Chroma server is idle`,
  );
}

function readOnce<T>(file: string, walMode: boolean, read: (db: Db, file: string) => T): T {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'chroma-ferry-sqlite-'));
  try {
    const link = path.join(tmp, SQLITE_FILE);
    if (walMode) {
      // The wasm VFS has no shared memory, so it cannot open a WAL database; the WAL is empty
      // (checked by the caller), so a private copy switched to rollback mode holds the same data.
      copyFileSync(file, link);
      const fd = openSync(link, 'r+');
      try {
        writeSync(fd, Buffer.from([1, 1]), 0, 2, 18);
      } finally {
        closeSync(fd);
      }
    } else {
      symlinkSync(file, link);
    }
    let db: Db;
    try {
      db = new (loadSqlite().Database)(link, { readOnly: true, fileMustExist: true });
    } catch (e) {
      throw new UserError(`${file} could not be opened as SQLite (${(e as Error).message}): check the file is a readable Chroma database`);
    }
    try {
      return read(db, file);
    } finally {
      db.close();
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function parseSpace(configJson: string | null, legacy: string | null): DistanceSpace {
  if (configJson) {
    try {
      const cfg = JSON.parse(configJson) as Record<string, unknown>;
      const vi = cfg['vector_index'] as Record<string, Record<string, unknown> | undefined> | undefined;
      const candidates = [
        vi?.['hnsw']?.['space'],
        vi?.['spann']?.['space'],
        (cfg['hnsw_configuration'] as Record<string, unknown> | undefined)?.['space'], // chroma 0.6
        (cfg['hnsw'] as Record<string, unknown> | undefined)?.['space'],
      ];
      for (const c of candidates) if (typeof c === 'string' && SPACES.has(c)) return c as DistanceSpace;
    } catch {
      // fall through to the legacy metadata key
    }
  }
  if (legacy && SPACES.has(legacy)) return legacy as DistanceSpace;
  return 'l2';
}

function toInt(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v);
  return 0;
}

/** seq_id in max_seq_id was a big-endian BLOB before metadb migration 5 and an INTEGER after. */
function seqIdValue(v: unknown): number {
  if (v instanceof Uint8Array) {
    let n = 0;
    for (const b of v) n = n * 256 + b;
    return n;
  }
  return toInt(v);
}

/** The manifest, read on an open connection (`file`: its path, for messages); a UserError when it is not a Chroma db. */
export function manifestOf(db: Db, file: string): SqliteManifest {
  const tables = new Set(
    (db.all(`SELECT name FROM sqlite_master WHERE type = 'table'`) as { name: string }[]).map((r) => r.name),
  );
  const missing = REQUIRED_TABLES.filter((t) => !tables.has(t));
  if (missing.length > 0) {
    throw new UserError(`${file} is a SQLite database but not a Chroma one (no ${missing.join(', ')} table): point at a Chroma persist directory`);
  }
  const hasCollectionMetadata = tables.has('collection_metadata');
  const hasQueue = tables.has('embeddings_queue');
  const hasMaxSeq = tables.has('max_seq_id');
  const collectionCols = new Set((db.all(`PRAGMA table_info(collections)`) as { name: string }[]).map((r) => r.name));
  const hasConfig = collectionCols.has('config_json_str');

  const rows = db.all(
    `SELECT c.id AS id, c.name AS name, c.dimension AS dimension,
            ${hasConfig ? 'c.config_json_str' : 'NULL'} AS config,
            COALESCE(d.tenant_id, '') AS tenant, COALESCE(d.name, '') AS database,
            ${hasCollectionMetadata ? `(SELECT str_value FROM collection_metadata m WHERE m.collection_id = c.id AND m.key = 'hnsw:space')` : 'NULL'} AS legacy_space,
            (SELECT s.id FROM segments s WHERE s.collection = c.id AND s.scope = 'METADATA' LIMIT 1) AS segment_id
       FROM collections c LEFT JOIN databases d ON d.id = c.database_id`,
  ) as {
    id: string; name: string; dimension: unknown; config: string | null; tenant: string; database: string;
    legacy_space: string | null; segment_id: string | null;
  }[];

  const countStmt = db.prepare(`SELECT COUNT(*) AS n FROM embeddings WHERE segment_id = ?`);
  const existsStmt = db.prepare(`SELECT 1 AS x FROM embeddings WHERE segment_id = ? AND embedding_id = ?`);
  const maxSeqStmt = hasMaxSeq ? db.prepare(`SELECT seq_id FROM max_seq_id WHERE segment_id = ?`) : null;
  const pendingStmt = hasQueue
    ? db.prepare(`SELECT seq_id, operation, id FROM embeddings_queue WHERE seq_id > ? AND topic LIKE ? ESCAPE '\\' ORDER BY seq_id`)
    : null;

  let pendingWrites = 0;
  const collections: CollectionCount[] = [];
  try {
    for (const r of rows) {
      let count = 0;
      if (r.segment_id) {
        count = toInt((countStmt.get([r.segment_id]) as { n: unknown } | null)?.n);
        if (pendingStmt) {
          const maxSeqRow = maxSeqStmt?.get([r.segment_id]) as { seq_id: unknown } | null | undefined;
          const maxSeq = maxSeqRow ? seqIdValue(maxSeqRow.seq_id) : 0;
          // Topic is 'persistent://<tenant>/<database>/<collection id>' (Chroma 1.x writes 'default/default'
          // whatever the tenant is), so match on the collection id only.
          const pattern = `%/${r.id.replace(/[\\%_]/g, (c) => `\\${c}`)}`;
          const pending = pendingStmt.all([maxSeq, pattern]) as { seq_id: unknown; operation: unknown; id: string }[];
          if (pending.length > 0) {
            pendingWrites += pending.length;
            // Replay the not-yet-applied operations over the applied state so the count is exact.
            const overlay = new Map<string, boolean>();
            const exists = (id: string): boolean => {
              const o = overlay.get(id);
              if (o !== undefined) return o;
              return existsStmt.get([r.segment_id, id]) !== null;
            };
            for (const p of pending) {
              const op = toInt(p.operation);
              const had = exists(p.id);
              if ((op === OP_ADD || op === OP_UPSERT) && !had) { overlay.set(p.id, true); count++; }
              else if (op === OP_DELETE && had) { overlay.set(p.id, false); count--; }
              else if (op === OP_UPDATE) { /* no change in membership */ }
            }
          }
        }
      }
      const dim = r.dimension === null || r.dimension === undefined ? null : toInt(r.dimension);
      collections.push({
        tenant: r.tenant,
        database: r.database,
        name: r.name,
        id: r.id,
        count,
        dimension: dim,
        space: parseSpace(r.config, r.legacy_space),
      });
    }
  } finally {
    countStmt.finalize();
    existsStmt.finalize();
    maxSeqStmt?.finalize();
    pendingStmt?.finalize();
  }

  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  collections.sort((a, b) => cmp(a.tenant, b.tenant) || cmp(a.database, b.database) || cmp(a.name, b.name));
  const schemaVersion = (db.all(`SELECT dir, MAX(version) AS version FROM migrations GROUP BY dir ORDER BY dir`) as { dir: string; version: unknown }[])
    .map((m) => ({ dir: m.dir, version: toInt(m.version) }));
  return {
    collections,
    totalRecords: collections.reduce((n, c) => n + c.count, 0),
    schemaVersion,
    pendingWrites,
  };
}

/**
 * readSqliteManifest on a worker thread: the same result, but SQLite's WebAssembly memory (about
 * 25 MB) is released when the thread ends instead of staying in this process for the rest of the
 * run (deploy's peak memory is then that of packing alone).
 */
export function readSqliteManifestInWorker(persistDir: string): Promise<SqliteManifest> {
  return readInSqliteWorker<SqliteManifest>(import.meta.url, 'readSqliteManifest', persistDir);
}

/**
 * Call `exported(persistDir)` of the module at `moduleUrl` (a reader built on readChromaSqlite:
 * synchronous, its result plain data) on a worker thread, for the same reason as above. A
 * UserError it throws is a UserError here.
 */
export async function readInSqliteWorker<T>(moduleUrl: string, exported: string, persistDir: string): Promise<T> {
  useBaselineWasmCompiler(); // the worker compiles SQLite's WebAssembly with this process's flags
  const worker = new Worker(new URL('./sqlite-manifest-worker.js', import.meta.url), { workerData: { module: moduleUrl, exported, dir: persistDir } });
  try {
    const msg = await new Promise<{ result?: T; error?: string; user?: boolean }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the sqlite reader thread exited (code ${code}) without an answer`)));
    });
    if (msg.error !== undefined) throw msg.user ? new UserError(msg.error) : new Error(msg.error);
    return msg.result as T;
  } finally {
    await worker.terminate();
  }
}
