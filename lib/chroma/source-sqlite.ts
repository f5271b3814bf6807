/**
 * The deploy's one read of the source's `chroma.sqlite3`: the migrations (which Chroma wrote it,
 * for the preflight's version check) and the manifest (per-collection counts, for the manifest
 * step) in one pass, on one worker thread (SQLite's WebAssembly memory is not kept in this
 * process), with the state of the file they were read from. The manifest step copies a snapshot
 * of the source afterwards: when the source's file is still that one (identity, size, mtime,
 * SQLite change counter) and the snapshot's copy has its size and change counter, the snapshot
 * holds what was read and the manifest is used as it is; otherwise the snapshot is read again.
 */
import { UserError } from '../common/errors.ts';
import { migrationLevelsOf } from './migrations.ts';
import type { MigrationLevels } from './releases.ts';
import {
  manifestOf, readChromaSqliteAt, readInSqliteWorker, sameSqliteFile, sqliteFileState,
  type SqliteFileState, type SqliteManifest,
} from './sqlite-manifest.ts';

export interface SourceSqlite {
  migrations: MigrationLevels;
  /** null when the file is not a whole Chroma db: the manifest step refuses it with its own line. */
  manifest: SqliteManifest | null;
  /** The file the two were read from, as it was during the read. */
  file: SqliteFileState;
}

/** Both reads of `persistDir/chroma.sqlite3` on one connection (this thread; see readSourceSqliteInWorker). */
export function readSourceSqlite(persistDir: string): SourceSqlite {
  const { result, file } = readChromaSqliteAt(persistDir, (db, f) => {
    const migrations = migrationLevelsOf(db, f);
    let manifest: SqliteManifest | null = null;
    try {
      manifest = manifestOf(db, f);
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
    }
    return { migrations, manifest };
  });
  return { ...result, file };
}

/** readSourceSqlite on a worker thread. */
export function readSourceSqliteInWorker(persistDir: string): Promise<SourceSqlite> {
  return readInSqliteWorker<SourceSqlite>(import.meta.url, 'readSourceSqlite', persistDir);
}

/**
 * The manifest of `read` (taken from `sourceDir`) when `snapshotDir`, copied from `sourceDir`
 * after that read, holds the same chroma.sqlite3; undefined when it may not (read the snapshot).
 */
export function manifestOfSnapshot(read: SourceSqlite | undefined, sourceDir: string, snapshotDir: string): SqliteManifest | undefined {
  if (!read?.manifest) return undefined;
  try {
    if (!sameSqliteFile(sqliteFileState(sourceDir), read.file)) return undefined;
    const copy = sqliteFileState(snapshotDir);
    if (copy.size !== read.file.size || copy.changeCounter !== read.file.changeCounter) return undefined;
  } catch {
    return undefined;
  }
  return read.manifest;
}
