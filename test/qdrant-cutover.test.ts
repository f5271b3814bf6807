/**
 * Staged import and cutover on Qdrant (issue 17, section 3), against the OpenAPI-validating
 * stand-in: records go into run-stamped collections (`NAME__ferry_<run>`), the alias NAME is
 * switched at cutover in one request; `--undo` switches it back, `--finalize` drops the kept
 * versions; a real collection where the alias must go is refused before any write.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { runCli } from './helpers/deploy-env.ts';
import { qdrantCutoverSetup } from './helpers/qdrant-cutover.ts';
import type { QdrantStandin } from './helpers/qdrant-standin.ts';

describe('Qdrant: staged import, alias cutover, undo', () => {
  const setup = qdrantCutoverSetup('ferry-qcutover-');
  const { standin, migrate } = setup;

  it('two runs: the alias goes to the newest run\'s collection, the previous one kept; --undo switches back; --finalize drops the undone one', async () => {
    const q = await standin();
    const cp = path.join(setup.root, 'cp-two');
    const { r2, a, b } = await setup.migrateTwice(q, cp);
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
    const cp = path.join(setup.root, 'cp-user');
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
    const r = await migrate(q, path.join(setup.root, 'cp-real'));
    assert.equal(r.code, 2, r.stderr + r.stdout);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /docs on qdrant\+http:\/\/127\.0\.0\.1:\d+ is a collection, not an alias: .*migrate into another name \(--rename docs=NEW\) or delete docs first/);
    assert.deepEqual([...q.collections.keys()], ['docs']);
    assert.ok(!q.calls.some((c) => /create|upsert|update_aliases/.test(c)), q.calls.join(', '));
  });
});
