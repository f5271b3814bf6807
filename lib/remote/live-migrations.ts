/**
 * The migrations of the live dir's chroma.sqlite3, read on the far side with python3's sqlite3
 * module, read-only (`mode=ro`: no lock files, no journal, nothing written). Its server applied
 * every migration it knows when it opened the dir, so these are exactly what that server knows.
 * Constant sh and Python code; the live dir is the only argument.
 */
import { levelsOf } from '../chroma/migrations.ts';
import type { MigrationLevels } from '../chroma/releases.ts';
import type { RemoteLayout } from './layout.ts';
import { remoteScript, type RemoteScript } from './shell.ts';

export const LIVE_MIGRATIONS_TITLE = 'read the live dir\'s migrations';

export function liveMigrationsScript(l: RemoteLayout): RemoteScript {
  return remoteScript(LIVE_MIGRATIONS_TITLE, `
    db="$1/chroma.sqlite3"
    if [ ! -f "$db" ]; then echo "live=absent"; exit 0; fi
    if ! command -v python3 >/dev/null 2>&1; then echo "python3=absent"; exit 0; fi
    python3 -c '
    import sys
    try:
        import sqlite3, urllib.parse
        con = sqlite3.connect("file:" + urllib.parse.quote(sys.argv[1]) + "?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT dir, MAX(version) FROM migrations GROUP BY dir").fetchall()
        finally:
            con.close()
    except Exception as e:
        print("error=" + " ".join(str(e).split()))
        sys.exit(0)
    for d, v in rows:
        print("migration=%s %s" % (d, v))
    ' "$db"
  `, [l.live]);
}

/** What the script found: the live dir's levels, or why they could not be read. */
export type LiveMigrations = { levels: MigrationLevels } | { unavailable: string };

export function parseLiveMigrations(stdout: string): LiveMigrations {
  const lines = stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  if (lines.includes('live=absent')) return { unavailable: 'no live dir (chroma.sqlite3) on the volume yet' };
  if (lines.includes('python3=absent')) return { unavailable: 'the remote has no python3 to read the live dir\'s chroma.sqlite3' };
  const error = lines.find((l) => l.startsWith('error='));
  if (error) return { unavailable: `the live dir's chroma.sqlite3 could not be read (${printable(error.slice(6))})` };
  const rows = lines.filter((l) => l.startsWith('migration=')).map((l) => {
    const [dir, version] = l.slice('migration='.length).split(' ');
    return { dir, version };
  });
  const levels = levelsOf(rows);
  if (Object.keys(levels).length === 0) return { unavailable: 'the live dir\'s chroma.sqlite3 has no migrations recorded' };
  return { levels };
}

/** Text from the remote, shown to the user: printable, one line, bounded. */
function printable(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
}
