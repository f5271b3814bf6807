/**
 * bench: `migrate` Chroma -> Chroma on loopback (real servers, RECORDS x 768) against, in the same
 * run: the raw ingest ceiling (the same records added with the target's max batch size and
 * nothing else) and the seed's naive loop (export all, then `add` in batches of 100, one at a
 * time). Then our peak memory at RECORDS and at LARGE records. Prints `name value unit` lines and
 * `ratio <name> <value>`; exits 0 whatever the numbers.
 *
 *   npm run bench:migrate        npm run bench:migrate -- --records 10000 --large 80000
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { chromaClientFor } from '../lib/chroma/client.ts';
import { addRecords } from '../testkit/sample-db.ts';
import { startChromaServer, type ChromaServer } from '../lib/chroma/server.ts';

/** `--records N` / `--large N` (or BENCH_RECORDS / BENCH_LARGE): the timed run and the memory run. */
function knob(flag: string, env: string, fallback: number): number {
  const i = process.argv.indexOf(flag);
  const v = Number(i >= 0 ? process.argv[i + 1] : process.env[env] ?? fallback);
  if (!Number.isInteger(v) || v <= 0) {
    process.stderr.write(`${flag} ${i >= 0 ? process.argv[i + 1] : process.env[env]}: a positive whole number of records; e.g. ${flag} ${fallback}\n`);
    process.exit(2);
  }
  return v;
}
const RECORDS = knob('--records', 'BENCH_RECORDS', 10_000);
const LARGE = knob('--large', 'BENCH_LARGE', 80_000);
const DIM = 768;
const CLI = fileURLToPath(new URL('../bin/chroma-ferry.js', import.meta.url));
const root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-bench-migrate-'));
const servers: ChromaServer[] = [];
const line = (name: string, value: number | string, unit: string) => process.stdout.write(`${name} ${value} ${unit}\n`);
const ratio = (name: string, value: number) => process.stdout.write(`ratio ${name} ${value.toFixed(2)}\n`);

async function server(name: string): Promise<ChromaServer> {
  const s = await startChromaServer({ path: path.join(root, name) });
  servers.push(s);
  return s;
}

async function sourceWith(records: number, name: string): Promise<ChromaServer> {
  const s = await server(name);
  await chromaClientFor(s.url).createCollection({ name: 'bench', embeddingFunction: null, configuration: { hnsw: { space: 'cosine' } } });
  await addRecords(s.url, 'bench', { start: 0, count: records, dim: DIM, seed: 1 });
  return s;
}

/** Our migrate as a child process: wall seconds and peak RSS (MB). */
async function ours(source: ChromaServer, tag: string): Promise<{ secs: number; rssMb: number }> {
  const target = await server(`ours-${tag}`);
  const t0 = performance.now();
  const r = await execa(process.execPath, [CLI, 'migrate', '--yes', '--json', '--source-url', source.url, '--target-url', target.url,
    '--checkpoint-dir', path.join(root, `cp-${tag}`), '--log-dir', path.join(root, 'logs'), ...(process.env.BENCH_BATCH ? ['--batch-size', process.env.BENCH_BATCH] : [])], { reject: false, env: { CHROMA_FERRY_REPORT_MAXRSS: '1', CI: 'true' } });
  const secs = (performance.now() - t0) / 1000;
  if (r.exitCode !== 0) throw new Error(`migrate failed: ${r.stderr.slice(-500)}`);
  const kb = Number(/maxrss_kb (\d+)/.exec(r.stderr)?.[1] ?? NaN);
  const steps = (JSON.parse(r.stdout) as { steps: { name: string; ms: number }[] }).steps;
  for (const st of steps) line(`ours_${tag}_step_${st.name}`, (st.ms / 1000).toFixed(2), 's');
  return { secs, rssMb: kb / 1024 };
}

try {
  const source = await sourceWith(RECORDS, 'source');
  const all = await (await chromaClientFor(source.url).getCollection({ name: 'bench', embeddingFunction: undefined } as never))
    .get({ include: ['embeddings', 'documents', 'metadatas'] as never });

  // Raw ingest ceiling: adds only, the target's max batch size.
  const raw = await server('raw');
  const rawClient = chromaClientFor(raw.url);
  const rawCol = await rawClient.createCollection({ name: 'bench', embeddingFunction: null, configuration: { hnsw: { space: 'cosine' } } });
  const max = await rawClient.getMaxBatchSize();
  let t0 = performance.now();
  for (let i = 0; i < all.ids.length; i += max) {
    await rawCol.add({ ids: all.ids.slice(i, i + max), embeddings: all.embeddings.slice(i, i + max), documents: all.documents.slice(i, i + max) as string[], metadatas: all.metadatas.slice(i, i + max) as never });
  }
  const rawSecs = (performance.now() - t0) / 1000;

  // The seed's naive loop: export everything, then add 100 at a time.
  const naive = await server('naive');
  t0 = performance.now();
  const src = await chromaClientFor(source.url).getCollection({ name: 'bench', embeddingFunction: undefined } as never);
  const exported = await src.get({ include: ['embeddings', 'documents', 'metadatas'] as never });
  const naiveCol = await chromaClientFor(naive.url).createCollection({ name: 'bench', embeddingFunction: null, configuration: { hnsw: { space: 'cosine' } } });
  for (let i = 0; i < exported.ids.length; i += 100) {
    await naiveCol.add({ ids: exported.ids.slice(i, i + 100), embeddings: exported.embeddings.slice(i, i + 100), documents: exported.documents.slice(i, i + 100) as string[], metadatas: exported.metadatas.slice(i, i + 100) as never });
  }
  const naiveSecs = (performance.now() - t0) / 1000;

  const small = await ours(source, 'small');
  const oursRate = RECORDS / small.secs;
  line('records', RECORDS, 'records');
  line('raw_ingest', Math.round(RECORDS / rawSecs), 'records/s');
  line('naive_loop', Math.round(RECORDS / naiveSecs), 'records/s');
  line('ours', Math.round(oursRate), 'records/s');
  line(`ours_peak_rss_${RECORDS}`, small.rssMb.toFixed(0), 'MB');

  const big = await ours(await sourceWith(LARGE, 'source-large'), 'large');
  line(`ours_peak_rss_${LARGE}`, big.rssMb.toFixed(0), 'MB');
  line(`ours_${LARGE}`, Math.round(LARGE / big.secs), 'records/s');
  ratio('ours_vs_raw_ingest', oursRate / (RECORDS / rawSecs));
  ratio('ours_vs_naive_loop', oursRate / (RECORDS / naiveSecs));
  ratio(`peak_rss_${LARGE}_vs_${RECORDS}`, big.rssMb / small.rssMb);
} finally {
  for (const s of servers) await s.stop().catch(() => undefined);
  await fs.rm(root, { recursive: true, force: true });
}
