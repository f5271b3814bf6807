/**
 * Local building blocks as commands: `snapshot`, `pack` and `verify`. They are what the deploy
 * runbook does on this machine, so `deploy --plan` can print a procedure a person can run.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { packToChunks } from '../lib/archive/pack.ts';
import { snapshotSource } from '../lib/archive/snapshot.ts';
import { writeJsonAtomic } from '../lib/atomic-file.ts';
import { readSqliteManifest } from '../lib/chroma/sqlite-manifest.ts';
import { parseDuration, parseHealthUrl, parseSourceDir } from '../lib/cli-support.ts';
import { UserError } from '../lib/errors.ts';
import { parseSize } from '../lib/units.ts';
import { listCollectionCounts, waitForHeartbeat } from '../lib/chroma/http.ts';
import { uniqueScopes, waitUntilServing, type ExpectedCollection } from '../lib/verify-serving.ts';

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

export async function verifyCommand(flags: { healthUrl: string; manifest?: string; timeout: string; json?: boolean }): Promise<void> {
  const url = parseHealthUrl(flags.healthUrl)!;
  const timeoutMs = parseDuration('--timeout', flags.timeout);
  let expected: ExpectedCollection[] | undefined;
  if (flags.manifest) {
    try {
      expected = (JSON.parse(await fs.readFile(flags.manifest, 'utf8')) as { collections: ExpectedCollection[] }).collections;
    } catch (e) {
      throw new UserError(`--manifest ${flags.manifest}: cannot read it as a manifest (${(e as Error).message}); pass the file written by \`chroma-ferry snapshot --manifest\``);
    }
    if (!Array.isArray(expected)) throw new UserError(`--manifest ${flags.manifest}: no "collections" list`);
  }
  const result: { healthy: boolean; url: string; api?: string; collections: { name: string; count: number }[]; problems: string[] } = {
    healthy: false, url, collections: [], problems: [],
  };
  try {
    if (expected) {
      const check = await waitUntilServing(url, expected, { timeoutMs });
      result.api = check.api;
      result.collections = check.served.map((c) => ({ name: `${c.tenant}/${c.database}/${c.name}`, count: c.count }));
      result.problems = check.mismatches;
    } else {
      result.api = await waitForHeartbeat(url, { timeoutMs });
      const served = await listCollectionCounts(url, uniqueScopes([]));
      result.collections = served.map((c) => ({ name: `${c.tenant}/${c.database}/${c.name}`, count: c.count }));
      result.problems = [];
    }
  } catch (e) {
    result.problems.push(`server at ${url} did not answer: ${e instanceof Error ? e.message : String(e)}`);
  }
  result.healthy = result.problems.length === 0;
  if (flags.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    process.stdout.write(`${result.healthy ? 'healthy' : 'UNHEALTHY'}  ${url}${result.api ? ` (API ${result.api})` : ''}\n`);
    for (const c of result.collections) process.stdout.write(`  ${c.name}: ${c.count}\n`);
    for (const p of result.problems) process.stdout.write(`  problem: ${p}\n`);
  }
  process.exitCode = result.healthy ? 0 : 1;
}
