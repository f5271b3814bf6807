/**
 * Per-collection record counts read ON THE REMOTE from a live dir's `chroma.sqlite3`, read-only,
 * by the remote's own python3 (its `sqlite3` module): how the verify of an app that embeds Chroma
 * (no Chroma HTTP API to ask) proves the live data holds what was deployed.
 *
 * The script is constant: sh that checks for python3 with sqlite3, then constant python code given
 * as an argument, the database path as the next one. The database is opened with a `file:` URI in
 * `mode=ro` (and `PRAGMA query_only`) inside one read transaction, so the app that holds it open is
 * never disturbed and nothing is written. The counts are computed exactly as the deploy's manifest
 * computes them locally (lib/chroma/sqlite-manifest.ts): rows of the collection's metadata segment
 * plus the embeddings queue's not yet applied adds and deletes, so a server or app that applied
 * its queue meanwhile still counts the same.
 */
import { remoteScript, type RemoteScript } from './shell.ts';
import { parseKv } from './scripts.ts';

export interface RemoteCollectionCount {
  tenant: string;
  database: string;
  name: string;
  count: number;
}

/** What the remote said: the counts, no way to read SQLite there (why), or a file it could not read (why). */
export type RemoteCounts =
  | { state: 'counted'; collections: RemoteCollectionCount[] }
  | { state: 'skipped'; why: string }
  | { state: 'unreadable'; why: string };

/** The python run on the remote; argv[1] is the database file. Prints one `counted=JSON` or `unreadable=MESSAGE` line. */
export const COUNT_COLLECTIONS_PY = String.raw`
import json, re, sqlite3, sys, urllib.parse

def say(key, value):
    sys.stdout.write(key + "=" + value.replace("\n", " ") + "\n")

def as_int(v):
    if isinstance(v, (bytes, bytearray)):
        return int.from_bytes(v, "big")
    if isinstance(v, int):
        return v
    if isinstance(v, str) and re.fullmatch(r"-?[0-9]+", v):
        return int(v)
    return 0

def counts(con):
    tables = set(r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    missing = [t for t in ("collections", "databases", "segments", "embeddings") if t not in tables]
    if missing:
        raise ValueError("a SQLite database but not a Chroma one (no " + ", ".join(missing) + " table)")
    queue = "embeddings_queue" in tables
    max_seq = "max_seq_id" in tables
    rows = con.execute(
        "SELECT c.id, c.name, COALESCE(d.tenant_id, ''), COALESCE(d.name, ''),"
        " (SELECT s.id FROM segments s WHERE s.collection = c.id AND s.scope = 'METADATA' LIMIT 1)"
        " FROM collections c LEFT JOIN databases d ON d.id = c.database_id").fetchall()
    out = []
    for cid, name, tenant, database, segment in rows:
        n = 0
        if segment is not None:
            n = as_int(con.execute("SELECT COUNT(*) FROM embeddings WHERE segment_id = ?", (segment,)).fetchone()[0])
            if queue:
                applied = 0
                if max_seq:
                    r = con.execute("SELECT seq_id FROM max_seq_id WHERE segment_id = ?", (segment,)).fetchone()
                    if r is not None:
                        applied = as_int(r[0])
                pattern = "%/" + re.sub(r"([\\%_])", r"\\\1", str(cid))
                overlay = {}
                for _seq, op, eid in con.execute(
                        "SELECT seq_id, operation, id FROM embeddings_queue WHERE seq_id > ? AND topic LIKE ? ESCAPE '\\' ORDER BY seq_id",
                        (applied, pattern)).fetchall():
                    op = as_int(op)
                    if eid in overlay:
                        had = overlay[eid]
                    else:
                        had = con.execute("SELECT 1 FROM embeddings WHERE segment_id = ? AND embedding_id = ?", (segment, eid)).fetchone() is not None
                    if op in (0, 2) and not had:
                        overlay[eid] = True
                        n += 1
                    elif op == 3 and had:
                        overlay[eid] = False
                        n -= 1
        out.append({"tenant": tenant, "database": database, "name": name, "count": n})
    return out

path = sys.argv[1]
try:
    con = sqlite3.connect("file:" + urllib.parse.quote(path) + "?mode=ro", uri=True, isolation_level=None)
    try:
        con.execute("PRAGMA query_only = 1")
        con.execute("BEGIN")
        result = counts(con)
        con.execute("ROLLBACK")
    finally:
        con.close()
except Exception as e:
    say("unreadable", type(e).__name__ + ": " + str(e))
    sys.exit(0)
say("counted", json.dumps(result))
`;

/** The remote script: `skipped=WHY` without python3 or its sqlite3 module, else the python's one line. */
export function countCollectionsScript(sqliteFile: string): RemoteScript {
  return remoteScript(
    'count the collections of the live chroma.sqlite3 on the remote (python3 sqlite3, read-only)',
    `
    if ! command -v python3 >/dev/null 2>&1; then echo "skipped=the remote has no python3"; exit 0; fi
    if ! python3 -c 'import sqlite3' >/dev/null 2>&1; then echo "skipped=the remote's python3 has no sqlite3 module"; exit 0; fi
    exec python3 -c "$1" "$2"
    `,
    [COUNT_COLLECTIONS_PY, sqliteFile],
  );
}

/** Read what countCollectionsScript printed. */
export function parseRemoteCounts(stdout: string): RemoteCounts {
  const kv = parseKv(stdout);
  const skipped = kv.get('skipped');
  if (skipped !== undefined) return { state: 'skipped', why: skipped };
  const unreadable = kv.get('unreadable');
  if (unreadable !== undefined) return { state: 'unreadable', why: unreadable };
  const counted = kv.get('counted');
  if (counted !== undefined) {
    const list: unknown = JSON.parse(counted);
    if (Array.isArray(list) && list.every(isCount)) return { state: 'counted', collections: list };
  }
  throw new Error(`the remote count of the live collections printed no result: ${stdout.trim().split('\n').slice(-1)[0] || 'nothing'}`);
}

function isCount(v: unknown): v is RemoteCollectionCount {
  const c = v as Record<string, unknown>;
  return !!c && typeof c === 'object' && typeof c.tenant === 'string' && typeof c.database === 'string' && typeof c.name === 'string'
    && Number.isInteger(c.count);
}
