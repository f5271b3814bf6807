/**
 * bench: the validation gate against a plain paged read of both databases, measured in the same
 * run (issue 17's target: within 2.5x). Real Chroma servers, RECORDS x 768 (default 10,000),
 * Chroma -> Chroma, `none`. The records are added and migrated by child processes (this file with
 * `--fill`, then the CLI), so this process's peak RSS is the paged read's, then the gate's (compare
 * 10,000 with 40,000: the gate holds a bucket of each side, not a database). Prints `name value unit` lines, then
 * `ratio <name> <value>`; exits 0 whatever the numbers.
 *
 *   npm run bench:gate            BENCH_RECORDS=40000 npm run bench:gate
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromaClientFor } from '../lib/chroma/client.ts';
import { addRecords } from '../testkit/sample-db.ts';
import { startChromaServer } from '../lib/chroma/server.ts';
import { execa } from 'execa';
import { bucketCount } from '../lib/gate/record-buckets.ts';
import { runValidate } from '../runbooks/validate/index.ts';

const RECORDS = Number(process.env.BENCH_RECORDS ?? 10_000);
const DIM = 768;
const names = ['bench_a', 'bench_b'];

if (process.argv[2] === '--fill') {
  // Child: the old database's collections and records.
  const url = process.argv[3]!;
  for (const name of names) {
    await chromaClientFor(url).createCollection({ name, embeddingFunction: null, configuration: { hnsw: { space: 'cosine' } } });
    await addRecords(url, name, { start: 0, count: RECORDS / names.length, dim: DIM, seed: 1 });
  }
  process.exit(0);
}

const root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-bench-gate-'));
const oldDb = await startChromaServer({ path: path.join(root, 'old') });
const newDb = await startChromaServer({ path: path.join(root, 'new') });
const signal = new AbortController().signal;
try {
  const fill = await execa(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--fill', oldDb.url], { reject: false, stdin: 'ignore' });
  if (fill.exitCode !== 0) throw new Error(`filling the old database failed: ${fill.stderr || fill.stdout}`);
  const cli = fileURLToPath(new URL('../bin/chroma-ferry.js', import.meta.url));
  const m = await execa(process.execPath, [cli, 'migrate', '--yes', '--json', '--source-url', oldDb.url, '--target-url', newDb.url, '--transform', 'none',
    '--checkpoint-dir', path.join(root, 'cp'), '--log-dir', path.join(root, 'logs')], { reject: false, stdin: 'ignore', env: { CI: 'true' } });
  if (m.exitCode !== 0) throw new Error(`migration for the bench failed: ${m.stderr || m.stdout}`);
  const mb = (kb: number) => (kb / 1024).toFixed(0);
  const rssStart = process.resourceUsage().maxRSS;

  // Baseline: one paged read (ids, documents, metadatas, embeddings) of both databases, before and
  // after the gate (their mean: the machine's load drifts during a run).
  const pagedRead = async () => {
    const t0 = performance.now();
    for (const url of [oldDb.url, newDb.url]) {
      const client = chromaClientFor(url);
      for (const name of names) {
        const col = await client.getCollection({ name, embeddingFunction: undefined } as never);
        const n = await col.count();
        for (let offset = 0; offset < n; offset += 500) await col.get({ limit: 500, offset, include: ['documents', 'metadatas', 'embeddings'] as never });
      }
    }
    return performance.now() - t0;
  };
  const readBefore = await pagedRead();
  const rssRead = process.resourceUsage().maxRSS;

  const t1 = performance.now();
  const r = await runValidate({
    oldUrl: oldDb.url, newUrl: newDb.url, transform: 'none', queries: 10, topK: 10, output: path.join(root, 'report.md'), autoRollback: false,
    outputMode: 'json', signal,
  });
  const gateMs = performance.now() - t1;
  const rssGate = process.resourceUsage().maxRSS;
  const readAfter = await pagedRead();
  const readMs = (readBefore + readAfter) / 2;
  process.stdout.write(`records ${RECORDS} records\n`);
  process.stdout.write(`dimension ${DIM} floats\n`);
  process.stdout.write(`buckets ${bucketCount(RECORDS)} per-side\n`);
  process.stdout.write(`paged_read_both ${(readMs / 1000).toFixed(2)} s\n`);
  process.stdout.write(`paged_read_both_before_gate ${(readBefore / 1000).toFixed(2)} s\n`);
  process.stdout.write(`paged_read_both_after_gate ${(readAfter / 1000).toFixed(2)} s\n`);
  process.stdout.write(`gate ${(gateMs / 1000).toFixed(2)} s\n`);
  process.stdout.write(`peak_rss_at_start ${mb(rssStart)} MB\n`);
  process.stdout.write(`peak_rss_after_paged_read ${mb(rssRead)} MB\n`);
  process.stdout.write(`peak_rss_after_gate ${mb(rssGate)} MB\n`);
  process.stdout.write(`gate_status ${r.overall_status} -\n`);
  for (const c of r.checks) if (c.status !== 'PASSED') process.stdout.write(`check_${c.name} ${c.status} ${JSON.stringify(c.figures)}\n`);
  process.stdout.write(`ratio gate_vs_paged_read ${(gateMs / readMs).toFixed(2)}\n`);
} finally {
  await oldDb.stop();
  await newDb.stop();
  await fs.rm(root, { recursive: true, force: true });
}
