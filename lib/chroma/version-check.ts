/**
 * Deploy preflight: can the far side's Chroma open the source's data, and what will it do to it?
 *
 * An older server opens a newer persist dir without complaint and fails later, at runtime; a newer
 * server upgrades an older dir in place, one way. So the source's highest migration per dir is
 * compared with what the server knows, learnt (a) from the live dir's own `migrations` table, read
 * on the remote where python3 can (its server applied all it knows on open), else (b) from the
 * server's `GET /api/v2/version` mapped through lib/chroma/releases.ts. A source that needs a newer
 * Chroma is refused before anything is uploaded or changed (exit 2); an older one is deployed with
 * a warning; when neither (a) nor (b) is possible the check is skipped and the summary says why.
 */
import { UserError } from '../common/errors.ts';
import type { PlanCommand } from '../engine/plan.ts';
import type { RemoteHost } from '../hosts/remote-host.ts';
import type { RemoteLayout } from '../remote/layout.ts';
import { liveMigrationsScript, parseLiveMigrations } from '../remote/live-migrations.ts';
import type { RemoteScript } from '../remote/shell.ts';
import { chromaToken, tokenHeaders } from './api-token.ts';
import { awaitedLater } from '../common/awaited-later.ts';
import { readSourceSqliteInWorker, type SourceSqlite } from './source-sqlite.ts';
import {
  describeReleaseKnowing, describeReleaseNeeded, formatLevels, migrationsKnownBy, NEWEST_KNOWN_RELEASE, parseRelease,
  releaseNeededBy, type MigrationLevels,
} from './releases.ts';

/** The check's outcome, as the summary (`chromaVersion` in --json) records it; a refusal is thrown instead. */
export interface ChromaVersionCheck {
  outcome: 'same' | 'source-older' | 'skipped';
  /** How the server's side was learnt: its live dir's migrations, or its version. */
  via?: 'live-dir' | 'server-version';
  source?: { writtenBy: string; migrations: MigrationLevels };
  server?: { chroma: string; migrations: MigrationLevels };
  /** skipped: why; source-older: the warning. */
  note?: string;
}

/** What the far side's Chroma is known to be. */
export type ServerSide =
  | { via: 'live-dir'; levels: MigrationLevels }
  /** endpoint: the URL that said it (…/api/v2/version). */
  | { via: 'server-version'; release: string; endpoint: string };

/** The verdict of one comparison: a refusal carries its one line. */
export type Verdict = ChromaVersionCheck | { outcome: 'refused'; line: string };

interface DirDiff { dir: string; source: number; server: number }

/** Compare the source's migrations with the server's side (pure: the unit tests' subject). */
export function judgeVersions(source: MigrationLevels, server: ServerSide): Verdict {
  const needed = releaseNeededBy(source);
  const src = { writtenBy: describeReleaseNeeded(needed), migrations: source };
  let levels: MigrationLevels;
  let chroma: string;
  let knowsMore = false;
  let via: string;
  if (server.via === 'live-dir') {
    levels = server.levels;
    chroma = describeReleaseKnowing(levels);
    via = 'its live dir has';
  } else {
    const known = migrationsKnownBy(server.release);
    if (!known) {
      return { outcome: 'skipped', via: 'server-version', source: src, note: `${server.endpoint} says "${server.release}", not a Chroma release with chroma.sqlite3 (0.4.0 or later)` };
    }
    levels = known.levels;
    knowsMore = known.atLeast;
    chroma = `Chroma ${server.release}`;
    via = `by ${server.endpoint}; that release knows`;
  }
  const srv = { chroma, migrations: levels };
  const dirs = [...new Set([...Object.keys(source), ...Object.keys(levels)])].sort();
  const diff = (d: string): DirDiff => ({ dir: d, source: source[d] ?? 0, server: levels[d] ?? 0 });
  const newer = dirs.map(diff).filter((d) => d.source > d.server);
  const older = dirs.map(diff).filter((d) => d.source < d.server);
  if (newer.length > 0) {
    if (knowsMore) {
      return {
        outcome: 'skipped', via: server.via, source: src, server: srv,
        note: `the source holds ${newer.map((d) => `${d.dir} ${d.source}`).join(', ')}, newer than this tool's release table (up to ${NEWEST_KNOWN_RELEASE}), ` +
          `and the server runs ${chroma}: whether it knows them cannot be told`,
      };
    }
    const upgrade = needed.known ? `upgrade the server to Chroma >= ${needed.release} first` : 'upgrade the server to the Chroma that wrote the source first';
    return {
      outcome: 'refused',
      line: `the source needs a newer Chroma than the server: source written by ${src.writtenBy} (${newer.map((d) => `${d.dir} ${d.source}`).join(', ')}), ` +
        `server ${chroma} (${via} ${newer.map((d) => `${d.dir} ${d.server}`).join(', ')}); ${upgrade}, or build the data with ${chroma}`,
    };
  }
  if (older.length > 0) {
    return {
      outcome: 'source-older', via: server.via, source: src, server: srv,
      note: `the server (${chroma}) will upgrade the deployed data in place when it opens it (${older.map((d) => `${d.dir} ${d.source} -> ${d.server}`).join(', ')}), ` +
        'one way: no older Chroma opens it afterwards; the backup this deploy takes is the way back',
    };
  }
  return { outcome: 'same', via: server.via, source: src, server: srv };
}

/** `GET URL/api/v2/version` (a 0.x server: /api/v1/version): the server's release, as it says it, and the URL that said it. */
export async function serverRelease(url: string, signal?: AbortSignal): Promise<{ release: string; endpoint: string }> {
  const base = url.replace(/\/+$/, '');
  const headers = tokenHeaders(chromaToken());
  let last = '';
  for (const api of ['v2', 'v1']) {
    const deadline = AbortSignal.timeout(5000);
    const endpoint = `${base}/api/${api}/version`;
    let res: Response;
    try {
      res = await fetch(endpoint, { headers, signal: signal ? AbortSignal.any([signal, deadline]) : deadline });
    } catch (e) {
      const cause = (e as { cause?: { code?: unknown; message?: unknown } }).cause;
      const why = e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError') ? 'timed out' : String(cause?.code ?? cause?.message ?? (e as Error).message);
      throw new Error(`no answer (${why})`);
    }
    const text = await res.text();
    if (res.ok) {
      let v: unknown = text.trim();
      try { v = JSON.parse(text); } catch { /* a bare string */ }
      if (typeof v === 'string' && parseRelease(v)) return { release: v.trim(), endpoint };
      throw new Error(`it answered ${JSON.stringify(String(text).slice(0, 40))}, not a release number`);
    }
    last = `HTTP ${res.status}`;
    if (![404, 405, 410, 501].includes(res.status)) break;
  }
  throw new Error(`it answered ${last}`);
}

export interface VersionCheckOptions {
  host: RemoteHost;
  layout: RemoteLayout;
  /** The source's migrations, or why they could not be read. */
  source: { levels: MigrationLevels } | { unreadable: string };
  healthUrl?: string;
  signal?: AbortSignal;
  /** The live dir's migrations, read already (started before the source was read). */
  liveRead?: Promise<{ stdout: string }>;
}

/** The whole check; a refusal is a UserError (exit 2), before anything changed. */
export async function checkChromaVersion(o: VersionCheckOptions): Promise<ChromaVersionCheck> {
  // The manifest step reads the same file and refuses with its own line.
  if ('unreadable' in o.source) return { outcome: 'skipped', note: `the source's migrations could not be read (${o.source.unreadable})` };
  const source = o.source.levels;
  if (Object.keys(source).length === 0) return { outcome: 'skipped', note: 'the source\'s chroma.sqlite3 records no migrations' };
  const live = parseLiveMigrations((await (o.liveRead ?? o.host.run(liveMigrationsScript(o.layout), { signal: o.signal }))).stdout);
  let verdict: Verdict;
  if ('levels' in live) {
    verdict = judgeVersions(source, { via: 'live-dir', levels: live.levels });
  } else if (!o.healthUrl) {
    verdict = { outcome: 'skipped', note: `${live.unavailable}, and no --health-url to ask the server's version` };
  } else {
    try {
      verdict = judgeVersions(source, { via: 'server-version', ...(await serverRelease(o.healthUrl, o.signal)) });
    } catch (e) {
      verdict = { outcome: 'skipped', note: `${live.unavailable}, and the server at ${o.healthUrl} did not say its version: ${e instanceof Error ? e.message : String(e)}` };
    }
    if (verdict.outcome === 'skipped' && verdict.via === 'server-version') verdict.note = `${live.unavailable}; ${verdict.note}`;
  }
  if (verdict.outcome === 'refused') throw new UserError(verdict.line);
  if (verdict.outcome === 'skipped' && !verdict.source) {
    verdict.source = { writtenBy: describeReleaseNeeded(releaseNeededBy(source)), migrations: source };
  }
  return verdict;
}

/** The part of a deploy context the preflight's check works with (runbooks/deploy/context.ts). */
export interface VersionCheckContext {
  o: { host: RemoteHost; source: string; healthUrl?: string; signal?: AbortSignal };
  layout: RemoteLayout;
  /** The steps this run runs: without the swap there is nothing to check. */
  selected: ReadonlySet<string>;
  summary: { warnings: string[]; chromaVersion?: ChromaVersionCheck };
  /** Set here: the source's chroma.sqlite3 as read for the check (its manifest serves the manifest step). */
  sourceSqlite?: SourceSqlite;
}

/**
 * The deploy preflight's check, run to its verdict (a refusal rejects). It resolves to a function
 * that puts the outcome in the summary and its warning among the warnings: the preflight starts
 * the check alongside its other looks and applies it in its turn, so warnings keep their order.
 */
export async function startChromaVersionCheck(c: VersionCheckContext, progress?: (what: string) => void): Promise<() => void> {
  if (!c.selected.has('swap')) return () => {};
  progress?.('comparing the source\'s Chroma with the server\'s');
  // The remote read does not wait for the local one (the source's sqlite is read on a worker thread,
  // the longer of the two); a source without migrations leaves its answer unused.
  const liveRead = awaitedLater(c.o.host.run(liveMigrationsScript(c.layout), { signal: c.o.signal }));
  let source: VersionCheckOptions['source'];
  try {
    c.sourceSqlite = await readSourceSqliteInWorker(c.o.source);
    source = { levels: c.sourceSqlite.migrations };
  } catch (e) {
    source = { unreadable: e instanceof Error ? e.message : String(e) };
  }
  const check = await checkChromaVersion({ host: c.o.host, layout: c.layout, source, healthUrl: c.o.healthUrl, signal: c.o.signal, liveRead });
  return () => {
    c.summary.chromaVersion = check;
    if (check.outcome === 'source-older') c.summary.warnings.push(check.note!);
    // An unreadable source is refused by the manifest step with its own line.
    if (check.outcome === 'skipped' && check.source) c.summary.warnings.push(`Chroma version check skipped: ${check.note}`);
  };
}

/** The check in `--plan`: the remote read, what it must show, and the fallback. */
export function chromaVersionPlan(p: {
  manifest: { schemaVersion: readonly { dir: string; version: number }[] };
  layout: RemoteLayout;
  o: { healthUrl?: string };
  remote(script: RemoteScript, expect?: string): PlanCommand;
}): { commands: PlanCommand[]; notes: string[] } {
  const source: Record<string, number> = {};
  for (const m of p.manifest.schemaVersion) source[m.dir] = m.version;
  if (Object.keys(source).length === 0) {
    return {
      // Read all the same: it starts before the source is read (lib/chroma/version-check.ts).
      commands: [p.remote(liveMigrationsScript(p.layout), 'not used: the source records no migrations')],
      notes: ['the source records no migrations: the Chroma version check is skipped'],
    };
  }
  const needed = releaseNeededBy(source);
  const fallback = p.o.healthUrl
    ? `GET ${p.o.healthUrl.replace(/\/+$/, '')}/api/v2/version must say ${needed.known ? `>= ${needed.release}` : `a Chroma newer than ${NEWEST_KNOWN_RELEASE}`}`
    : 'no --health-url: the check is skipped';
  return {
    commands: [p.remote(liveMigrationsScript(p.layout),
      `migration=DIR N lines: the server must know at least the source's ${formatLevels(source)} (written by ${describeReleaseNeeded(needed)}); ` +
        'a lower N: stop, upgrade the server first (the deploy refuses, exit 2); a higher N: the server upgrades the data in place, one way. ' +
        `live=absent or python3=absent: ${fallback}`)],
    notes: [],
  };
}
