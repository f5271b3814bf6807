/**
 * Which Chroma release writes and knows which schema of `chroma.sqlite3`. The schema is recorded
 * in the file's `migrations` table, one row per applied migration (`dir`, `version`); a server
 * applies every migration it knows on open and never one it does not, so the highest version per
 * dir says which releases can open a persist dir, and which wrote it.
 *
 * Source of the facts: chroma-core/chroma, the first release tag containing each migration file.
 */

/** A Chroma release number, e.g. "1.3.0" (pre-release suffixes are dropped). */
export type Release = string;

/** Highest applied migration per migrations dir ('embeddings_queue', 'metadb', 'sysdb'). */
export type MigrationLevels = Readonly<Record<string, number>>;

/** The first release that ships each migration, per dir, in order. */
const FIRST_RELEASE: Readonly<Record<string, readonly (readonly [version: number, release: Release])[]>> = {
  embeddings_queue: [[2, '0.5.6']],
  metadb: [[3, '0.4.6'], [4, '0.5.6'], [5, '1.0.0'], [6, '1.5.0']],
  sysdb: [[4, '0.4.15'], [5, '0.5.0'], [6, '0.5.1'], [7, '0.5.4'], [8, '0.5.6'], [9, '0.5.6'], [10, '1.3.0']],
};

/** chroma.sqlite3 appeared in 0.4.0 (0.3.x kept duckdb + parquet files); migrations below each dir's first listed one are in every 0.4+ release. */
export const FIRST_SQLITE_RELEASE: Release = '0.4.0';

/** The migrations dirs Chroma knows of. */
export const MIGRATION_DIRS: readonly string[] = Object.keys(FIRST_RELEASE).sort();

/** The newest release this table knows a migration of. */
export const NEWEST_KNOWN_RELEASE: Release = Object.values(FIRST_RELEASE).flat().map(([, r]) => r).sort(compareReleases).at(-1)!;

/** "1.0.0" -> [1, 0, 0]; undefined for anything else (pre-release and build suffixes are ignored: "1.3.0-rc1" is 1.3.0). */
export function parseRelease(text: string): [number, number, number] | undefined {
  const m = /^v?(\d+)\.(\d+)\.(\d+)(?:[-+.][0-9A-Za-z.+-]*)?$/.exec(text.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** Orders release numbers (both must parse). */
export function compareReleases(a: Release, b: Release): number {
  const x = parseRelease(a);
  const y = parseRelease(b);
  if (!x || !y) throw new Error(`not a release number: ${x ? b : a}`);
  return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
}

/** The highest migration of `dir` that every release with chroma.sqlite3 has. */
function baseline(dir: string): number {
  return FIRST_RELEASE[dir]![0]![0] - 1;
}

/**
 * The first release that ships migration `version` of `dir`: FIRST_SQLITE_RELEASE for the oldest
 * ones, undefined for a dir or a version this table does not know (a release newer than it).
 */
export function firstReleaseWith(dir: string, version: number): Release | undefined {
  const table = FIRST_RELEASE[dir];
  if (!table) return undefined;
  if (version <= baseline(dir)) return FIRST_SQLITE_RELEASE;
  return table.find(([v]) => v === version)?.[1];
}

/** The oldest release that can open a dir with these migrations: `known` false when a migration is newer than the table. */
export type ReleaseNeeded =
  | { known: true; release: Release }
  | { known: false; unknown: { dir: string; version: number }[] };

export function releaseNeededBy(levels: MigrationLevels): ReleaseNeeded {
  const unknown: { dir: string; version: number }[] = [];
  let release = FIRST_SQLITE_RELEASE;
  for (const dir of Object.keys(levels).sort()) {
    const r = firstReleaseWith(dir, levels[dir]!);
    if (r === undefined) unknown.push({ dir, version: levels[dir]! });
    else if (compareReleases(r, release) > 0) release = r;
  }
  return unknown.length ? { known: false, unknown } : { known: true, release };
}

/** "Chroma >= 1.0.0", or "a Chroma newer than 1.5.0" for migrations the table does not know. */
export function describeReleaseNeeded(n: ReleaseNeeded): string {
  return n.known ? `Chroma >= ${n.release}` : `a Chroma newer than ${NEWEST_KNOWN_RELEASE}`;
}

/**
 * The migrations a release knows, per dir; `atLeast` is true when the release is newer than the
 * table (it knows these and maybe more). Undefined for a release without chroma.sqlite3 (0.3.x) or
 * a version that does not parse.
 */
export function migrationsKnownBy(release: Release): { levels: MigrationLevels; atLeast: boolean } | undefined {
  if (!parseRelease(release) || compareReleases(release, FIRST_SQLITE_RELEASE) < 0) return undefined;
  const levels: Record<string, number> = {};
  for (const dir of MIGRATION_DIRS) {
    levels[dir] = baseline(dir);
    for (const [v, r] of FIRST_RELEASE[dir]!) if (compareReleases(r, release) <= 0) levels[dir] = Math.max(levels[dir]!, v);
  }
  return { levels, atLeast: compareReleases(release, NEWEST_KNOWN_RELEASE) > 0 };
}

/**
 * The releases a server that knows exactly these migrations can be (its live dir's, which it
 * migrated on open): from the oldest that ships them, before the next one that adds a migration.
 * "Chroma >= 1.0.0, < 1.3.0"; "Chroma >= 1.5.0"; "a Chroma newer than 1.5.0".
 */
export function describeReleaseKnowing(levels: MigrationLevels): string {
  const needed = releaseNeededBy(levels);
  if (!needed.known) return describeReleaseNeeded(needed);
  const later = MIGRATION_DIRS.flatMap((dir) => FIRST_RELEASE[dir]!.filter(([v]) => v > (levels[dir] ?? 0)).map(([, r]) => r))
    .filter((r) => compareReleases(r, needed.release) > 0)
    .sort(compareReleases);
  return later.length ? `Chroma >= ${needed.release}, < ${later[0]}` : `Chroma >= ${needed.release}`;
}

/** "embeddings_queue 2, metadb 5, sysdb 9". */
export function formatLevels(levels: MigrationLevels): string {
  return Object.keys(levels).sort().map((d) => `${d} ${levels[d]}`).join(', ') || 'no migrations';
}
