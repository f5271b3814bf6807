/**
 * The schema a local persist dir was written with: the highest applied migration per dir of its
 * `chroma.sqlite3` `migrations` table (lib/chroma/releases.ts says which Chroma that is). Read
 * read-only through lib/chroma/sqlite-manifest.ts's access, which never writes in the dir.
 */
import { UserError } from '../common/errors.ts';
import type { MigrationLevels } from './releases.ts';
import { readChromaSqlite, type SqliteDb } from './sqlite-manifest.ts';

/** Highest migration per dir of `persistDir/chroma.sqlite3` (this thread; the deploy reads it with its manifest: source-sqlite.ts). */
export function readMigrations(persistDir: string): MigrationLevels {
  return readChromaSqlite(persistDir, migrationLevelsOf);
}

/** The highest migration per dir, read on an open connection (`file`: its path, for messages). */
export function migrationLevelsOf(db: SqliteDb, file: string): MigrationLevels {
  if (!db.get(`SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = 'migrations'`)) {
    throw new UserError(`${file} has no migrations table: it is not a Chroma persist directory`);
  }
  return levelsOf(db.all(`SELECT dir, MAX(version) AS version FROM migrations GROUP BY dir`) as { dir: unknown; version: unknown }[]);
}

/** Rows of (dir, version) -> the highest version per dir; rows that are not a dir name and a whole number are ignored. */
export function levelsOf(rows: readonly { dir: unknown; version: unknown }[]): MigrationLevels {
  const levels: Record<string, number> = {};
  for (const { dir, version } of rows) {
    const v = typeof version === 'bigint' ? Number(version) : typeof version === 'string' && /^\d+$/.test(version) ? Number(version) : version;
    if (typeof dir !== 'string' || !/^[a-z_]{1,64}$/.test(dir) || typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) continue;
    levels[dir] = Math.max(levels[dir] ?? 0, v);
  }
  return levels;
}
