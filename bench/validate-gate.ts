/**
 * bench: the validation gate against one full paged read of both databases (issue 6's target:
 * "comparable"). Real Chroma servers, RECORDS x 768 (default 10,000), Chroma -> Chroma, `none`.
 * Prints `name value unit` lines, then `ratio <name> <value>`; exits 0 whatever the numbers.
 *
 *   npm run bench:gate            BENCH_RECORDS=40000 npm run bench:gate
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromaClientFor } from '../lib/chroma/client.ts';
import { addRecords } from '../testkit/sample-db.ts';
import { startChromaServer } from '../lib/chroma/server.ts';
import { runMigrate } from '../runbooks/migrate/index.ts';
import { runValidate } from '../runbooks/validate/index.ts';

const RECORDS = Number(process.env.BENCH_RECORDS ?? 10_000);
const DIM = 768;
const root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-bench-gate-'));
const oldDb = await startChromaServer({ path: path.join(root, 'old') });
const newDb = await startChromaServer({ path: path.join(root, 'new') });
const signal = new AbortController().signal;
try {
  const names = ['bench_a', 'bench_b'];
  for (const name of names) {
    await chromaClientFor(oldDb.url).createCollection({ name, embeddingFunction: null, configuration: { hnsw: { space: 'cosine' } } });
    await addRecords(oldDb.url, name, { start: 0, count: RECORDS / names.length, dim: DIM, seed: 1 });
  }
  const m = await runMigrate({
    sourceUrl: oldDb.url, targetUrl: newDb.url, dryRun: false, resume: false, checkpointDir: path.join(root, 'cp'), logDir: path.join(root, 'logs'),
    filterCollections: [], transform: 'none', minValid: 0.95, workers: 2, verifySample: 50, output: 'json', signal,
  });
  if (!m.ok) throw new Error(`migration for the bench failed: ${m.error}`);

  // Baseline: one paged read (ids, documents, metadatas, embeddings) of both databases.
  const t0 = performance.now();
  for (const url of [oldDb.url, newDb.url]) {
    const client = chromaClientFor(url);
    for (const name of names) {
      const col = await client.getCollection({ name, embeddingFunction: undefined } as never);
      const n = await col.count();
      for (let offset = 0; offset < n; offset += 500) await col.get({ limit: 500, offset, include: ['documents', 'metadatas', 'embeddings'] as never });
    }
  }
  const readMs = performance.now() - t0;

  const t1 = performance.now();
  const r = await runValidate({
    oldUrl: oldDb.url, newUrl: newDb.url, transform: 'none', queries: 10, topK: 10, output: path.join(root, 'report.md'), autoRollback: false,
    outputMode: 'json', signal,
  });
  const gateMs = performance.now() - t1;
  process.stdout.write(`records ${RECORDS} records\n`);
  process.stdout.write(`dimension ${DIM} floats\n`);
  process.stdout.write(`full_read_both ${(readMs / 1000).toFixed(2)} s\n`);
  process.stdout.write(`gate ${(gateMs / 1000).toFixed(2)} s\n`);
  process.stdout.write(`gate_status ${r.overall_status} -\n`);
  for (const c of r.checks) if (c.status !== 'PASSED') process.stdout.write(`check_${c.name} ${c.status} ${JSON.stringify(c.figures)}\n`);
  process.stdout.write(`ratio gate_vs_full_read ${(gateMs / readMs).toFixed(2)}\n`);
} finally {
  await oldDb.stop();
  await newDb.stop();
  await fs.rm(root, { recursive: true, force: true });
}
