/**
 * Staged import and cutover on Qdrant (issue 17, section 3), against the OpenAPI-validating
 * stand-in: records go into run-stamped collections (`NAME__ferry_<run>`), the alias NAME is
 * switched at cutover in one request; `--undo` switches it back, `--finalize` drops the kept
 * versions; a real collection where the alias must go is refused before any write.
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

describe('Qdrant: staged import, alias cutover, undo', () => {
  let root: string;
  let chroma: ChromaServer;
  const standins: QdrantStandin[] = [];
  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-qcutover-'));
    chroma = await startChromaServer({ path: path.join(root, 'chroma') });
    const col = await chromaClientFor(chroma.url).createCollection({ name: 'docs', embeddingFunction: null, configuration: { hnsw: { space: 'l2' } } });
    await col.add(sampleRecords({ collection: 'docs', start: 0, count: 60, dim: 8, seed: 7 }));
  });
  after(async () => {
    for (const q of standins) await q.close();
    await chroma?.stop().catch(() => undefined);
    await fs.rm(root, { recursive: true, force: true });
  });
  const standin = async () => {
    const q = await startQdrantStandin();
    standins.push(q);
    return q;
  };
  const migrate = (q: QdrantStandin, cp: string) => runCli(['migrate', '--yes', '--json', '--checkpoint-dir', cp, '--log-dir', path.join(root, 'logs'),
    '--source-url', chroma.url, '--target-url', `qdrant+${q.url}`]);

  it('two runs: the alias goes to the newest run\'s collection, the previous one kept; --undo switches back; --finalize drops the undone one', async () => {
    const q = await standin();
    const cp = path.join(root, 'cp-two');
    const r1 = await migrate(q, cp);
    assert.equal(r1.code, 0, r1.stderr + r1.stdout);
    const r2 = await migrate(q, cp);
    assert.equal(r2.code, 0, r2.stderr + r2.stdout);
    const [a, b] = [`docs__ferry_${r1.json.runId}`, `docs__ferry_${r2.json.runId}`];
    assert.deepEqual([...q.aliases], [['docs', b]]);
    assert.deepEqual(r2.json.cutover.previous, [a], 'the collection the alias pointed at is the previous version');
    assert.deepEqual([...q.collections.keys()].sort(), [a, b].sort());
    assert.equal(q.collection('docs')!.points.size, 60);

    const u = await runCli(['migrate', '--undo', '--json', '--checkpoint-dir', cp]);
    assert.equal(u.code, 0, u.stderr + u.stdout);
    assert.deepEqual([...q.aliases], [['docs', a]], 'the alias is back on the first run\'s collection');
    const f = await runCli(['migrate', '--finalize', '--yes', '--json', '--checkpoint-dir', cp]);
    assert.equal(f.code, 0, f.stderr + f.stdout);
    assert.deepEqual(f.json.collections, [b]);
    assert.deepEqual([...q.collections.keys()], [a], 'the live collection is never dropped');
    assert.deepEqual(q.violations, []);
  });

  it('a collection the user had behind the alias is the previous version, and --finalize never drops it', async () => {
    const q = await standin();
    q.collections.set('docs_user', { size: 8, distance: 'Euclid', points: new Map() });
    q.aliases.set('docs', 'docs_user');
    const cp = path.join(root, 'cp-user');
    const r = await migrate(q, cp);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(r.json.cutover.previous, ['docs_user']);
    assert.deepEqual([...q.aliases], [['docs', `docs__ferry_${r.json.runId}`]]);
    const f = await runCli(['migrate', '--finalize', '--yes', '--json', '--checkpoint-dir', cp]);
    assert.equal(f.code, 0, f.stderr + f.stdout);
    assert.deepEqual(f.json.collections, []);
    assert.ok(q.collections.has('docs_user'), 'not created by the tool: kept');
  });

  it('a collection (not an alias) where the alias must go is refused before any write, in one line', async () => {
    const q = await standin();
    q.collections.set('docs', { size: 8, distance: 'Euclid', points: new Map() });
    const r = await migrate(q, path.join(root, 'cp-real'));
    assert.equal(r.code, 2, r.stderr + r.stdout);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /docs on qdrant\+http:\/\/127\.0\.0\.1:\d+ is a collection, not an alias: .*migrate into another name \(--rename docs=NEW\) or delete docs first/);
    assert.deepEqual([...q.collections.keys()], ['docs']);
    assert.ok(!q.calls.some((c) => /create|upsert|update_aliases/.test(c)), q.calls.join(', '));
  });
});
