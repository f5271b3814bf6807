/**
 * Local building blocks as commands: `snapshot`, `pack` and `verify`. They are what the deploy
 * runbook does on this machine, so `deploy --plan` can print a procedure a person can run.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { packToChunks } from '../lib/archive/pack.ts';
import { snapshotSource } from '../lib/archive/snapshot.ts';
import { writeJsonAtomic } from '../lib/engine/atomic-file.ts';
import { readSqliteManifest } from '../lib/chroma/sqlite-manifest.ts';
import { parseDuration, parseHealthUrl, parsePositiveInt, parsePositiveNumber, parseSourceDir } from '../lib/cli/support.ts';
import { UserError } from '../lib/common/errors.ts';
import { parseSize } from '../lib/common/units.ts';
import { expectedCollectionsOf } from '../lib/volume/deployed-manifest.ts';
import { annotateError, appendStepSummary } from '../lib/report/github.ts';
import { checkHealth, formatHealthReport, healthReportMarkdown, type HealthCheckOptions } from '../lib/serving/health-check.ts';
import type { ExpectedCollection } from '../lib/serving/verify-serving.ts';

export async function snapshotCommand(flags: { source: string; out: string; manifest?: string }): Promise<void> {
  const source = parseSourceDir(flags.source);
  const snap = await snapshotSource(source, flags.out);
  const m = readSqliteManifest(snap.dir);
  if (flags.manifest) await writeJsonAtomic(path.resolve(flags.manifest), m);
  process.stdout.write(`collections=${m.collections.length}\nrecords=${m.totalRecords}\n`);
}

export async function packCommand(flags: { dir: string; out: string; chunkSize: string }): Promise<void> {
  const chunkSize = parseSize('--chunk-size', flags.chunkSize);
  const st = await fs.stat(flags.dir).catch(() => null);
  if (!st?.isDirectory()) throw new UserError(`--dir ${flags.dir}: no such directory`);
  const r = await packToChunks(flags.dir, flags.out, chunkSize);
  process.stdout.write(`archive_sha256=${r.archiveSha256}\nchunks=${r.chunks.length}\nbytes=${r.archiveBytes}\n`);
}

export interface VerifyFlags {
  healthUrl: string;
  manifest?: string;
  timeout: string;
  samples: string;
  topK: string;
  maxLatencyMs: string;
  json?: boolean;
}

/** Without --manifest: reads the manifest the last deploy kept on the target (collections null: none kept). */
export type KeptManifest = () => Promise<{ where: string; collections: ExpectedCollection[] | null }>;

/** `--manifest FILE`: its expected collections; a file that is no manifest is bad input (exit 2). */
export async function readManifestFile(file: string): Promise<ExpectedCollection[]> {
  let json: unknown;
  try {
    json = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (e) {
    throw new UserError(`--manifest ${file}: cannot read it as a manifest (${(e as Error).message}); pass the file written by \`chroma-ferry snapshot --manifest\``);
  }
  const collections = expectedCollectionsOf(json);
  if (!collections) throw new UserError(`--manifest ${file}: no "collections" list of { tenant, database, name, count }`);
  return collections;
}

/** `verify`: flags checked first (exit 2), then the health check; exit 0 healthy, 1 unhealthy. */
export async function verifyCommand(flags: VerifyFlags, kept?: KeptManifest): Promise<void> {
  const url = parseHealthUrl(flags.healthUrl)!;
  const timeoutMs = parseDuration('--timeout', flags.timeout);
  const samples = parsePositiveInt('--samples', flags.samples, 0);
  const nResults = parsePositiveInt('--top-k', flags.topK);
  const maxLatencyMs = parsePositiveNumber('--max-latency-ms', flags.maxLatencyMs);
  let manifest: HealthCheckOptions['manifest'];
  const notes: string[] = [];
  if (flags.manifest) {
    manifest = { source: flags.manifest, collections: await readManifestFile(flags.manifest) };
  } else if (kept) {
    const { where, collections } = await kept();
    if (collections) manifest = { source: where, collections };
    else notes.push(`no manifest of a deploy at ${where}: counts not compared; heartbeat and latency only`);
  } else {
    notes.push('no --manifest and no --target: counts not compared');
  }
  const report = await checkHealth({ url, manifest, timeoutMs, samples, nResults, maxLatencyMs, notes });
  process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatHealthReport(report)}\n`);
  appendStepSummary(healthReportMarkdown(report));
  // An annotation would follow the JSON on stdout: only with the plain report.
  if (!report.healthy && !flags.json) annotateError(`Chroma at ${url} is unhealthy: ${report.problems.join('; ')}`, 'chroma-ferry verify');
  process.exitCode = report.healthy ? 0 : 1;
}
