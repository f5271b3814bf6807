/**
 * Verify an app that embeds Chroma (PersistentClient on VOLUME/NAME): it has no Chroma HTTP API
 * to ask, so `--app-health-url` proves three things instead:
 *
 * 1. answered: the app answers 2xx at its URL within the time limit (redirects are not followed:
 *    a 3xx is no answer);
 * 2. held: a process on the remote holds the live `VOLUME/NAME/chroma.sqlite3` open, the very file
 *    by inode (lib/volume/served-file.ts), so the app did not keep the file it had before the swap;
 * 3. counts: the collection counts read on the remote from that file, read-only
 *    (lib/remote/sqlite-counts.ts), equal the expected ones; skipped, and said why, where the remote
 *    has no python3 with sqlite3, or where there is no manifest to compare with.
 *
 * The report is data (JSON in summaries); the lines for people are formatAppServing().
 */
import path from 'node:path';
import { UserError } from '../common/errors.ts';
import { formatMs } from '../common/units.ts';
import type { RemoteHost } from '../hosts/remote-host.ts';
import { parseHttpUrl } from '../locations/server-url.ts';
import { markdownCell as cell } from '../report/github.ts';
import type { RemoteLayout } from '../remote/layout.ts';
import { countCollectionsScript, parseRemoteCounts } from '../remote/sqlite-counts.ts';
import { whoHoldsFile } from '../volume/served-file.ts';
import { compareCounts, type ExpectedCollection } from './verify-serving.ts';

export const APP_HEALTH_FLAG = '--app-health-url';

/** `--app-health-url`: http(s) with its scheme and path; no credentials, no query (it would be printed in every summary). */
export function parseAppHealthUrl(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  const u = parseHttpUrl(APP_HEALTH_FLAG, raw, {
    example: 'http://127.0.0.1:8080/health',
    instead: 'give a health URL that needs no credentials',
  });
  if (u.search || u.hash || raw.includes('?') || raw.includes('#')) {
    throw new UserError(`${APP_HEALTH_FLAG} ${u.origin}${u.pathname}?...: a query or fragment is refused (it could carry a token and would be printed in plans and summaries); give the health path alone, e.g. ${u.origin}${u.pathname}`);
  }
  return raw;
}

/** Check 1: the HTTP answer. */
export type AppAnswer = { ok: true; status: number; ms: number } | { ok: false; why: string };

/** Check 2: who holds the live chroma.sqlite3 (by inode). */
export type HeldCheck =
  | { state: 'held'; pids: number[] }
  | { state: 'not-held'; heldSqlite: string[] }
  | { state: 'skipped'; why: string };

/** Check 3: the counts read on the remote against the expected ones. */
export type CountsCheck =
  | { state: 'equal'; collections: number }
  | { state: 'different'; mismatches: string[] }
  | { state: 'unreadable'; why: string }
  | { state: 'skipped'; why: string };

export interface AppServingReport {
  healthy: boolean;
  /** The app's health URL. */
  url: string;
  /** The live file checks 2 and 3 are about: VOLUME/NAME/chroma.sqlite3 on the remote. */
  file: string;
  answered: AppAnswer;
  held: HeldCheck;
  counts: CountsCheck;
  problems: string[];
  notes: string[];
}

export interface AppServingOptions {
  url: string;
  /** Where checks 2 and 3 run; absent (verify without --target): only the answer is checked. */
  remote?: { host: RemoteHost; layout: RemoteLayout };
  /** The manifest's collections; absent: counts not compared (said why in `noCountsWhy`). */
  expected?: ExpectedCollection[];
  noCountsWhy?: string;
  /** How long the app may take to answer 2xx. */
  timeoutMs: number;
  /** After the answer, how long the new file may take to be held (an app that opens it lazily). Default 5 s. */
  settleMs?: number;
  signal?: AbortSignal;
}

const SQLITE = 'chroma.sqlite3';

/** VOLUME/NAME/chroma.sqlite3: the live file checks 2 and 3 are about. */
export function liveSqliteFile(layout: RemoteLayout): string {
  return path.posix.join(layout.live, SQLITE);
}

/** Poll the URL until it answers 2xx (redirects not followed), the time is up or `signal` aborts. */
export async function waitForAppAnswer(url: string, o: { timeoutMs: number; intervalMs?: number; signal?: AbortSignal }): Promise<AppAnswer> {
  const started = performance.now();
  const deadline = Date.now() + o.timeoutMs;
  let last = 'no answer';
  for (;;) {
    o.signal?.throwIfAborted();
    const left = deadline - Date.now();
    try {
      const timeout = AbortSignal.timeout(Math.max(100, Math.min(left, 5000)));
      const r = await fetch(url, { redirect: 'manual', signal: o.signal ? AbortSignal.any([o.signal, timeout]) : timeout });
      await r.body?.cancel();
      if (r.status >= 200 && r.status < 300) return { ok: true, status: r.status, ms: Math.round(performance.now() - started) };
      last = `HTTP ${r.status}`;
    } catch (e) {
      o.signal?.throwIfAborted();
      last = describeFetchError(e);
    }
    if (Date.now() + (o.intervalMs ?? 200) > deadline) break;
    await sleep(o.intervalMs ?? 200, o.signal);
  }
  return { ok: false, why: `the app at ${url} did not answer 2xx within ${formatMs(o.timeoutMs)} (last: ${last})` };
}

/** Checks 1-3 (2 and 3 only with `remote`); every failed one is a problem, every skipped one a note. */
export async function checkAppServes(o: AppServingOptions): Promise<AppServingReport> {
  const file = o.remote ? liveSqliteFile(o.remote.layout) : SQLITE;
  const report: AppServingReport = {
    healthy: false, url: o.url, file,
    answered: { ok: false, why: 'not checked' },
    held: { state: 'skipped', why: 'not checked' },
    counts: { state: 'skipped', why: 'not checked' },
    problems: [], notes: [],
  };
  report.answered = await waitForAppAnswer(o.url, { timeoutMs: o.timeoutMs, signal: o.signal });
  if (!report.answered.ok) {
    report.problems.push(report.answered.why);
    report.held = { state: 'skipped', why: 'the app did not answer' };
    report.counts = { state: 'skipped', why: 'the app did not answer' };
    return report;
  }
  if (!o.remote) {
    const why = 'no --target: the remote was not looked at';
    report.held = { state: 'skipped', why };
    report.counts = { state: 'skipped', why };
    report.notes.push(`${why}; whether the app holds VOLUME/NAME/${SQLITE} and its counts were not checked`);
    report.healthy = true;
    return report;
  }
  const { host } = o.remote;

  report.held = await waitUntilHeld(host, file, { settleMs: o.settleMs ?? 5000, signal: o.signal });
  if (report.held.state === 'not-held') {
    const others = report.held.heldSqlite.length ? `; SQLite files held open there: ${report.held.heldSqlite.join(', ')}` : '; no process holds any SQLite file';
    report.problems.push(`no process on ${host.label} holds ${file} open (this file, by inode): the app did not open the deployed data${others}; its restart must start it anew on ${o.remote.layout.live}`);
  } else if (report.held.state === 'skipped') {
    report.notes.push(`whether a process holds ${file} was not checked: ${report.held.why}`);
  }

  if (o.expected === undefined) {
    report.counts = { state: 'skipped', why: o.noCountsWhy ?? 'no manifest to compare with' };
  } else {
    const r = parseRemoteCounts((await host.run(countCollectionsScript(file), { signal: o.signal })).stdout);
    if (r.state === 'counted') {
      const mismatches = compareCounts(o.expected, r.collections);
      report.counts = mismatches.length ? { state: 'different', mismatches } : { state: 'equal', collections: r.collections.length };
      if (mismatches.length) report.problems.push(`the live ${file} does not hold the expected data (read on the remote): ${mismatches.join('; ')}`);
    } else if (r.state === 'unreadable') {
      report.counts = r;
      report.problems.push(`the live ${file} could not be read on the remote: ${r.why}`);
    } else {
      report.counts = r;
    }
  }
  if (report.counts.state === 'skipped') report.notes.push(`collection counts on the remote not compared: ${report.counts.why}`);
  report.healthy = report.problems.length === 0;
  return report;
}

/**
 * whoHoldsFile until the file is held, or `settleMs` is up: then its last answer. An app may answer
 * before it opens its data, and while nobody holds any chroma.sqlite3 /proc may not be able to
 * tell (unknown), so neither answer is final before the time is up.
 */
async function waitUntilHeld(host: RemoteHost, file: string, o: { settleMs: number; signal?: AbortSignal }): Promise<HeldCheck> {
  const deadline = Date.now() + o.settleMs;
  for (;;) {
    const r = await whoHoldsFile(host, file, { signal: o.signal });
    if (r.state === 'held') return { state: 'held', pids: r.pids };
    if (Date.now() + 250 > deadline) return r.state === 'unknown' ? { state: 'skipped', why: r.why } : { state: 'not-held', heldSqlite: r.heldSqlite };
    await sleep(250, o.signal);
  }
}

/** One line per check, for summaries and the verify report. */
export function formatAppServing(r: AppServingReport): string[] {
  const lines: string[] = [];
  lines.push(r.answered.ok ? `answered: HTTP ${r.answered.status} from ${r.url} after ${formatMs(r.answered.ms)}` : `answered: no (${r.answered.why})`);
  const h = r.held;
  lines.push(h.state === 'held' ? `held: ${r.file} is open in pid ${h.pids.join(', ')} (this file, by inode)`
    : h.state === 'not-held' ? `held: NO process holds ${r.file}${h.heldSqlite.length ? ` (held: ${h.heldSqlite.join(', ')})` : ''}`
      : `held: skipped (${h.why})`);
  const c = r.counts;
  lines.push(c.state === 'equal' ? `counts: read on the remote, equal to the manifest (${c.collections} collections)`
    : c.state === 'different' ? `counts: DIFFERENT (${c.mismatches.join('; ')})`
      : c.state === 'unreadable' ? `counts: the file could not be read (${c.why})`
        : `counts: skipped (${c.why})`);
  return lines;
}

/** The step's one-line note: the three checks in brief. */
export function appServingNote(r: AppServingReport): string {
  const h = r.held;
  const c = r.counts;
  return [
    r.answered.ok ? `app answered HTTP ${r.answered.status}` : 'app did not answer',
    h.state === 'held' ? `${SQLITE} held by pid ${h.pids.join(', ')}` : h.state === 'not-held' ? `${SQLITE} not held` : `held check skipped (${h.why})`,
    c.state === 'equal' ? `counts equal on the remote (${c.collections} collections)` : c.state === 'skipped' ? `counts check skipped (${c.why})` : `counts ${c.state}`,
  ].join('; ');
}

/** The verify report for a terminal or a CI log, one fact per line. */
export function formatAppHealthReport(r: AppServingReport, manifest: string | null): string {
  const lines = [`${r.healthy ? 'healthy' : 'UNHEALTHY'}  ${r.url} (app)`];
  lines.push(`  manifest: ${manifest ?? 'none (counts not compared)'}`);
  for (const l of formatAppServing(r)) lines.push(`  ${l}`);
  for (const n of r.notes) lines.push(`  note: ${n}`);
  for (const p of r.problems) lines.push(`  problem: ${p}`);
  return lines.join('\n');
}

/** The verify report as Markdown for a GitHub job summary. */
export function appHealthMarkdown(r: AppServingReport, manifest: string | null): string {
  const lines = [`## ${r.healthy ? '✅ app healthy' : '❌ app unhealthy'}`, ''];
  for (const p of r.problems) lines.push(`- **problem:** ${cell(p)}`);
  for (const n of r.notes) lines.push(`- note: ${cell(n)}`);
  lines.push('', `App ${cell(r.url)}; manifest: ${cell(manifest ?? 'none')}`, '', '| check | result |', '| --- | --- |');
  for (const l of formatAppServing(r)) {
    const i = l.indexOf(': ');
    lines.push(`| ${cell(l.slice(0, i))} | ${cell(l.slice(i + 2))} |`);
  }
  return lines.join('\n');
}

function describeFetchError(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'timed out';
  const cause = (e as { cause?: unknown }).cause as { code?: string; message?: string } | undefined;
  return cause?.code ?? cause?.message ?? e.message;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = () => { clearTimeout(t); reject(signal!.reason); };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
