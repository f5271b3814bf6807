/**
 * Qdrant clusters: --qdrant-shards and --qdrant-replication reach collection creation
 * (shard_number, replication_factor), --qdrant-ordering every upsert, against the OpenAPI-validating
 * stand-in; the flags are refused for a target that is not Qdrant.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromaClientFor } from '../lib/chroma/client.ts';
import { startChromaServer, type ChromaServer } from '../lib/chroma/server.ts';
import { sampleRecords } from '../testkit/sample-db.ts';
import { runCli } from './helpers/deploy-env.ts';
import { startQdrantStandin, type QdrantStandin } from './helpers/qdrant-standin.ts';

describe('Qdrant cluster settings', () => {
  let root: string;
  let chroma: ChromaServer;
  let qdrant: QdrantStandin;
  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-qcluster-'));
    chroma = await startChromaServer({ path: path.join(root, 'chroma') });
    const col = await chromaClientFor(chroma.url).createCollection({ name: 'docs', embeddingFunction: null, configuration: { hnsw: { space: 'cosine' } } });
    await col.add(sampleRecords({ collection: 'docs', start: 0, count: 90, dim: 12, seed: 7 }));
    qdrant = await startQdrantStandin();
  });
  after(async () => {
    await qdrant?.close();
    await chroma?.stop().catch(() => undefined);
    await fs.rm(root, { recursive: true, force: true });
  });

  const migrate = (args: string[]) => runCli(['migrate', '--yes', '--json', '--checkpoint-dir', path.join(root, `cp-${Math.random().toString(36).slice(2)}`),
    '--log-dir', path.join(root, 'logs'), '--source-url', chroma.url, ...args]);

  it('shard_number and replication_factor at creation, the ordering on every write', async () => {
    const r = await migrate(['--target-url', `qdrant+${qdrant.url}`, '--qdrant-shards', '3', '--qdrant-replication', '2', '--qdrant-ordering', 'strong', '--batch-size', '40']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(qdrant.violations, []);
    const c = qdrant.collection('docs')!;
    assert.equal(c.points.size, 90);
    assert.deepEqual([c.shardNumber, c.replicationFactor], [3, 2]);
    assert.deepEqual(c.orderings, ['strong', 'strong', 'strong']);
  });

  it('refused for a target that is not Qdrant, and a bad value refused (exit 2, one line)', async () => {
    for (const [args, says] of [
      [['--target-url', path.join(root, 'dir-target'), '--qdrant-shards', '2'], /--qdrant-shards: the target is not a Qdrant server/],
      [['--target-url', `qdrant+${qdrant.url}`, '--qdrant-ordering', 'fast'], /--qdrant-ordering fast: use weak, medium, strong/],
      [['--target-url', `qdrant+${qdrant.url}`, '--qdrant-replication', '0'], /--qdrant-replication/],
      [['--target-url', `qdrant+${qdrant.url}`, '--target-tenant', 'acme'], /--target-tenant: --target-url is a Qdrant server, which has no tenants/],
    ] as const) {
      const r = await migrate([...args]);
      assert.equal(r.code, 2, r.stderr + r.stdout);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, says);
    }
    await assert.rejects(fs.stat(path.join(root, 'dir-target')));
  });
});
