#!/usr/bin/env -S node --import tsx
/**
 * `npm run demo`: the whole deploy on the embedded default, no account needed.
 * Builds a sample source database (the seed's four collections) with the real Chroma server,
 * starts a local "production" Chroma on a local volume holding older data, deploys the source
 * onto it through `local:` with a restart of that server, and shows what it now serves.
 */
import path from 'node:path';
import { $, chalk, fs } from 'zx';
import { listCollectionCounts } from '../lib/chroma/http.ts';
import { localChromaRestartCommand } from '../testkit/restart-command.ts';
import { buildSampleDb, SEED_COLLECTIONS } from '../testkit/sample-db.ts';
import { freePort } from '../lib/chroma/server.ts';

const root = path.resolve('.demo');
const source = path.join(root, 'source');
const volumeRoot = path.join(root, 'prod-volume');
const live = path.join(volumeRoot, 'data', 'chroma_db');
const port = await freePort();
const url = `http://127.0.0.1:${port}`;
const restartCmd = localChromaRestartCommand({
  pidFile: path.join(root, 'prod-chroma.pid'), port, dataDir: live, logFile: path.join(root, 'prod-chroma.log'),
});

const step = (s: string) => console.log(chalk.bold(`\n== ${s}`));
await stopProdServer();
await fs.rm(root, { recursive: true, force: true });

step('building the source database (seed collections, pre-computed embeddings)');
const built = await buildSampleDb(source, SEED_COLLECTIONS, { seed: 7 });
for (const [name, n] of Object.entries(built)) console.log(`  ${name}: ${n}`);

step('starting a local "production" Chroma on a volume holding older data');
await buildSampleDb(live, [{ name: 'legacy_docs', count: 120, dim: 384, space: 'cosine' }], { seed: 1 });
await $`sh -c ${restartCmd}`;
console.log(`  serving ${live} at ${url}`);

step('npm run deploy:chromadb (target local:, restart and verify)');
const deploy = await $({ nothrow: true, stdio: 'inherit' })`node ${path.resolve('bin/chroma-ferry.js')} deploy --source ${source} --target ${`local:${volumeRoot}`} --volume /data --db-dir chroma_db --restart-cmd ${restartCmd} --health-url ${url} --health-timeout 60s --yes`;

step('what production serves now');
for (const c of await listCollectionCounts(url)) console.log(`  ${c.name}: ${c.count}`);
console.log(`  previous data kept in ${live}.old; backups in ${path.join(volumeRoot, 'data', '.ferry', 'backups')}`);

await stopProdServer();
process.exitCode = deploy.exitCode ?? 1;

async function stopProdServer(): Promise<void> {
  const pidFile = path.join(root, 'prod-chroma.pid');
  const pid = Number(await fs.readFile(pidFile, 'utf8').catch(() => ''));
  if (pid) {
    try { process.kill(pid, 'SIGTERM'); } catch { /* already gone */ }
  }
}
