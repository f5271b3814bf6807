/**
 * The setup the Qdrant cutover tests share, registered in the calling describe's hooks (as
 * far-side.ts does): in `before`, a temp root and a real Chroma server in it with a `docs`
 * collection (l2) of 60 sample records (dim 8, seed 7); the Qdrant stand-ins `standin()` starts
 * (test/helpers/qdrant-standin.ts); in `after`, the stand-ins closed, the server stopped, the root
 * removed. `migrate(q, cp)` runs a staged `migrate` from that server into the stand-in `q`;
 * `migrateTwice(q, cp)` two of them, as the tests of a second cutover start.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { chromaClientFor } from '../../lib/chroma/client.ts';
import { startChromaServer, type ChromaServer } from '../../lib/chroma/server.ts';
import { sampleRecords } from '../../testkit/sample-db.ts';
import { runCli, type CliResult } from './deploy-env.ts';
import { startQdrantStandin, type QdrantStandin } from './qdrant-standin.ts';

export interface QdrantCutoverSetup {
  /** The temp root (`prefix` + random), set in `before`. */
  readonly root: string;
  /** The Chroma server holding `docs`, set in `before`. */
  readonly chroma: ChromaServer;
  /** A new stand-in, closed in `after`. */
  standin(): Promise<QdrantStandin>;
  /** `migrate --yes --json` from the Chroma server into `q`, checkpoints in `cp`, logs under the root. */
  migrate(q: QdrantStandin, cp: string): Promise<CliResult>;
  /**
   * Two `migrate`s into `q` with the same `cp`, both exit 0, the alias `docs` then on the second's
   * collection: the second run's result, and `a`, `b` the first's and the second's collection.
   */
  migrateTwice(q: QdrantStandin, cp: string): Promise<{ r2: CliResult; a: string; b: string }>;
}

export function qdrantCutoverSetup(prefix: string): QdrantCutoverSetup {
  let root: string;
  let chroma: ChromaServer;
  const standins: QdrantStandin[] = [];
  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
    chroma = await startChromaServer({ path: path.join(root, 'chroma') });
    const col = await chromaClientFor(chroma.url).createCollection({ name: 'docs', embeddingFunction: null, configuration: { hnsw: { space: 'l2' } } });
    await col.add(sampleRecords({ collection: 'docs', start: 0, count: 60, dim: 8, seed: 7 }));
  });
  after(async () => {
    for (const q of standins) await q.close();
    await chroma?.stop().catch(() => undefined);
    await fs.rm(root, { recursive: true, force: true });
  });
  const migrate = (q: QdrantStandin, cp: string) => runCli(['migrate', '--yes', '--json', '--checkpoint-dir', cp, '--log-dir', path.join(root, 'logs'),
    '--source-url', chroma.url, '--target-url', `qdrant+${q.url}`]);
  return {
    get root() { return root; },
    get chroma() { return chroma; },
    async standin() {
      const q = await startQdrantStandin();
      standins.push(q);
      return q;
    },
    migrate,
    async migrateTwice(q, cp) {
      const r1 = await migrate(q, cp);
      assert.equal(r1.code, 0, r1.stderr + r1.stdout);
      const r2 = await migrate(q, cp);
      assert.equal(r2.code, 0, r2.stderr + r2.stdout);
      const [a, b] = [`docs__ferry_${r1.json.runId}`, `docs__ferry_${r2.json.runId}`];
      assert.deepEqual([...q.aliases], [['docs', b]]);
      return { r2, a, b };
    },
  };
}
