/**
 * `chroma-ferry verify`: is a running Chroma server healthy? Heartbeat, every collection and its
 * count (equal to a manifest's when there is one), and query latency by vector against a limit on
 * the p95. The report is data; formatting it for a terminal or a GitHub job summary is separate.
 */
import { listCollectionCounts, waitForHeartbeat, type ServedCollection } from '../chroma/http.ts';
import { measureQueryLatency, type LatencyStats } from '../chroma/query-latency.ts';
import { collectionKey as keyOf, uniqueScopes, waitUntilServing, type ExpectedCollection } from './verify-serving.ts';
import { markdownCell as cell } from '../report/github.ts';

export interface HealthCheckOptions {
  url: string;
  /** Expected collections and counts, and where they come from; absent: counts are listed, not compared. */
  manifest?: { source: string; collections: ExpectedCollection[] };
  timeoutMs: number;
  /** Queries timed per collection; 0 skips the latency check. */
  samples: number;
  nResults: number;
  maxLatencyMs: number;
  /** Said in the report as is (e.g. that no deploy kept a manifest). */
  notes?: string[];
  signal?: AbortSignal;
}

export interface CollectionHealth {
  /** tenant/database/name */
  name: string;
  count: number;
  /** The manifest's count, when there is a manifest and it lists the collection. */
  expected?: number;
  latency: LatencyStats | null;
  latencySkipped?: string;
}

export interface HealthReport {
  healthy: boolean;
  url: string;
  api?: string;
  /** Where the expected counts came from; null: none (counts not compared). */
  manifest: string | null;
  collections: CollectionHealth[];
  latency: { samples: number; nResults: number; maxLatencyMs: number; overall: LatencyStats | null } | null;
  problems: string[];
  notes: string[];
}

export async function checkHealth(o: HealthCheckOptions): Promise<HealthReport> {
  const report: HealthReport = {
    healthy: false, url: o.url, manifest: o.manifest?.source ?? null, collections: [], latency: null, problems: [], notes: [...(o.notes ?? [])],
  };
  let served: ServedCollection[];
  try {
    if (o.manifest) {
      const check = await waitUntilServing(o.url, o.manifest.collections, { timeoutMs: o.timeoutMs, signal: o.signal });
      report.api = check.api;
      served = check.served;
      report.problems.push(...check.mismatches);
    } else {
      report.api = await waitForHeartbeat(o.url, { timeoutMs: o.timeoutMs, signal: o.signal });
      served = await listCollectionCounts(o.url, uniqueScopes([]));
    }
  } catch (e) {
    report.problems.push(`server at ${o.url} did not answer: ${e instanceof Error ? e.message : String(e)}`);
    return report;
  }
  const expected = new Map((o.manifest?.collections ?? []).map((c) => [keyOf(c), c.count]));
  report.collections = served.map((c) => ({ name: keyOf(c), count: c.count, expected: expected.get(keyOf(c)), latency: null }));

  if (o.samples > 0) {
    try {
      const measured = await measureQueryLatency(o.url, report.api as 'v2' | 'v1', served, { samples: o.samples, nResults: o.nResults, signal: o.signal });
      for (const m of measured.collections) {
        const c = report.collections.find((x) => x.name === m.name)!;
        c.latency = m.stats;
        if (m.skipped) c.latencySkipped = m.skipped;
        if (m.stats && m.stats.p95Ms > o.maxLatencyMs) {
          report.problems.push(`${m.name}: query latency p95 ${formatLatency(m.stats.p95Ms)} is over the limit of ${formatLatency(o.maxLatencyMs)} (p50 ${formatLatency(m.stats.p50Ms)}, max ${formatLatency(m.stats.maxMs)}, ${m.stats.samples} queries)`);
        }
      }
      report.latency = { samples: o.samples, nResults: o.nResults, maxLatencyMs: o.maxLatencyMs, overall: measured.overall };
      if (measured.overall && measured.overall.p95Ms > o.maxLatencyMs) {
        report.problems.push(`overall query latency p95 ${formatLatency(measured.overall.p95Ms)} is over the limit of ${formatLatency(o.maxLatencyMs)}`);
      }
      if (!measured.overall) report.notes.push('no collection holds records with embeddings: latency not measured');
    } catch (e) {
      report.problems.push(`query latency check failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  } else {
    report.notes.push('--samples 0: latency not measured');
  }
  report.healthy = report.problems.length === 0;
  return report;
}

/** Milliseconds with enough digits for sub-millisecond limits (0.001 ms). */
export function formatLatency(ms: number): string {
  return ms >= 10 ? `${ms.toFixed(0)} ms` : ms >= 0.1 ? `${ms.toFixed(1)} ms` : `${ms.toPrecision(2)} ms`;
}

function statsLine(s: LatencyStats): string {
  return `p50 ${formatLatency(s.p50Ms)}, p95 ${formatLatency(s.p95Ms)}, max ${formatLatency(s.maxMs)} (${s.samples} queries)`;
}

/** The report for a terminal or a CI log: one fact per line. */
export function formatHealthReport(r: HealthReport): string {
  const lines = [`${r.healthy ? 'healthy' : 'UNHEALTHY'}  ${r.url}${r.api ? ` (API ${r.api})` : ''}`];
  lines.push(`  manifest: ${r.manifest ?? 'none (counts not compared)'}`);
  for (const c of r.collections) {
    const count = c.expected === undefined || c.expected === c.count ? `${c.count}` : `${c.count} (expected ${c.expected})`;
    const lat = c.latency ? `  latency ${statsLine(c.latency)}` : c.latencySkipped ? `  latency: skipped, ${c.latencySkipped}` : '';
    lines.push(`  ${c.name}: ${count}${lat}`);
  }
  if (r.latency?.overall) lines.push(`  overall latency: ${statsLine(r.latency.overall)}; limit p95 <= ${formatLatency(r.latency.maxLatencyMs)}`);
  for (const n of r.notes) lines.push(`  note: ${n}`);
  for (const p of r.problems) lines.push(`  problem: ${p}`);
  return lines.join('\n');
}

/** The report as Markdown for a GitHub job summary. */
export function healthReportMarkdown(r: HealthReport): string {
  const ms = (s: LatencyStats | null | undefined, k: keyof LatencyStats) => (s ? formatLatency(s[k]) : '-');
  const lines = [`## ${r.healthy ? '✅ Chroma healthy' : '❌ Chroma unhealthy'}`, ''];
  for (const p of r.problems) lines.push(`- **problem:** ${cell(p)}`);
  for (const n of r.notes) lines.push(`- note: ${cell(n)}`);
  const limit = r.latency ? `; latency limit p95 <= ${formatLatency(r.latency.maxLatencyMs)}, ${r.latency.samples} queries per collection, top ${r.latency.nResults}` : '';
  lines.push('', `Server ${cell(r.url)}${r.api ? ` (API ${r.api})` : ''}; manifest: ${cell(r.manifest ?? 'none')}${limit}`);
  lines.push('', '| collection | count | expected | p50 | p95 | max |', '| --- | --- | --- | --- | --- | --- |');
  for (const c of r.collections) {
    lines.push(`| ${cell(c.name)} | ${c.count} | ${c.expected ?? '-'} | ${ms(c.latency, 'p50Ms')} | ${ms(c.latency, 'p95Ms')} | ${ms(c.latency, 'maxMs')} |`);
  }
  const o = r.latency?.overall;
  if (o) lines.push(`| **overall** | | | ${ms(o, 'p50Ms')} | ${ms(o, 'p95Ms')} | ${ms(o, 'maxMs')} |`);
  return lines.join('\n');
}
