/**
 * The real Chroma servers the staged-cutover tests share, registered in the calling describe's
 * hooks (as far-side.ts does): in `before`, a temp root and a source server in it holding
 * `collections` (16-dim l2 sample records); targets `target()` starts, each with a live `alpha`
 * (10 records, other than the source's) and an unrelated `keep_me` (5 records); fault proxies
 * (test/helpers/fault-proxy.ts) `proxy()` starts; in `after`, the proxies closed, the servers
 * stopped, the root removed.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { chromaClientFor } from '../../lib/chroma/client.ts';
import { startChromaServer, type ChromaServer } from '../../lib/chroma/server.ts';
import { addRecords } from '../../testkit/sample-db.ts';
import { startFaultProxy, type FaultProxy } from './fault-proxy.ts';

export interface CutoverServers {
  /** The temp root (`prefix` + random), set in `before`. */
  readonly root: string;
  /** The source server, set in `before`. */
  readonly source: ChromaServer;
  /** A new target server with a live `alpha` and an unrelated `keep_me`. */
  target(): Promise<ChromaServer>;
  /** A fault proxy in front of `url`. */
  proxy(url: string, fault: Parameters<typeof startFaultProxy>[1]): Promise<FaultProxy>;
  /** A new checkpoint dir's path under the root. */
  cpDir(): string;
  /** `migrate --yes --json` from the source into `targetUrl`, logs under the root, `--verify-sample 1000`, then `extra`. */
  migrateArgs(targetUrl: string, checkpointDir: string, extra?: string[]): string[];
}

/** `collections`: [name, record count, seed] of the source's collections, created in this order. */
export function cutoverServers(prefix: string, collections: [string, number, number][]): CutoverServers {
  let root: string;
  let source: ChromaServer;
  const servers: ChromaServer[] = [];
  const proxies: FaultProxy[] = [];

  async function collection(url: string, name: string, count: number, seed: number): Promise<void> {
    await chromaClientFor(url).createCollection({ name, embeddingFunction: null, configuration: { hnsw: { space: 'l2' } } });
    if (count) await addRecords(url, name, { start: 0, count, dim: 16, seed });
  }

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
    source = await startChromaServer({ path: path.join(root, 'source') });
    servers.push(source);
    for (const [name, count, seed] of collections) await collection(source.url, name, count, seed);
  });
  after(async () => {
    for (const p of proxies) await p.close().catch(() => undefined);
    for (const s of servers) await s.stop().catch(() => undefined);
    await fs.rm(root, { recursive: true, force: true });
  });

  return {
    get root() { return root; },
    get source() { return source; },
    async target() {
      const s = await startChromaServer({ path: await fs.mkdtemp(path.join(root, 'target-')) });
      servers.push(s);
      await collection(s.url, 'alpha', 10, 99);
      await collection(s.url, 'keep_me', 5, 3);
      return s;
    },
    async proxy(url, fault) {
      const p = await startFaultProxy(url, fault);
      proxies.push(p);
      return p;
    },
    cpDir: () => path.join(root, `cp-${Math.random().toString(36).slice(2)}`),
    migrateArgs: (targetUrl, checkpointDir, extra = []) => ['migrate', '--yes', '--json', '--source-url', source.url, '--target-url', targetUrl,
      '--checkpoint-dir', checkpointDir, '--log-dir', path.join(root, 'logs'), '--verify-sample', '1000', ...extra],
  };
}
