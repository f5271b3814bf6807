/**
 * `validate --auto-rollback` after a staged migration into Qdrant (the OpenAPI-validating stand-in,
 * test/helpers/qdrant-standin.ts): a FAILED gate switches the alias back to the collection it
 * pointed at before the run (or removes it when there was none) and drops the failed run's
 * run-stamped collection; no real collection is created under the alias's name, the earlier
 * run's collection is untouched, and the journal says so (the failed run finalized: a later
 * `--undo` does not switch the alias again).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { runCli } from './helpers/deploy-env.ts';
import { qdrantCutoverSetup } from './helpers/qdrant-cutover.ts';
import type { QdrantStandin } from './helpers/qdrant-standin.ts';

describe('Qdrant: validate --auto-rollback after an alias cutover', () => {
  const setup = qdrantCutoverSetup('ferry-qrollback-');
  const { standin, migrate } = setup;
  const validate = (q: QdrantStandin, cp: string) => runCli(['validate', '--yes', '--json', '--auto-rollback', '--old-db-url', setup.chroma.url, '--new-db-url', `qdrant+${q.url}`,
    '--checkpoint-dir', cp, '--output', path.join(setup.root, `report-${Math.random().toString(36).slice(2)}.md`)]);
  /** One point of the collection behind `docs` gets a metadata key the source record does not have. */
  const tamper = (q: QdrantStandin) => {
    const p = [...q.collection('docs')!.points.values()][0]!;
    p.payload = { ...p.payload, tampered: true };
  };
  const journal = async (cp: string) => JSON.parse(await fs.readFile(path.join(cp, 'cutover-journal.json'), 'utf8')).entries as { runId: string; state: string }[];

  it('second run FAILED: the alias is back on the first run\'s collection, the second\'s dropped, no collection named docs; a later --undo changes nothing', async () => {
    const q = await standin();
    const cp = path.join(setup.root, 'cp-two');
    const { r2, a, b } = await setup.migrateTwice(q, cp);
    const firstPoints = structuredClone([...q.collections.get(a)!.points]);
    tamper(q);
    const plan = await runCli(['validate', '--plan', '--auto-rollback', '--old-db-url', setup.chroma.url, '--new-db-url', `qdrant+${q.url}`, '--checkpoint-dir', cp]);
    assert.equal(plan.code, 0, plan.stderr + plan.stdout);
    assert.match(plan.stdout, new RegExp(`if the gate FAILS \\(--auto-rollback\\): undo the alias cutover of run ${r2.json.runId}: alias docs back to ${a}; drop ${b} \\(no restore\\)`));

    const v = await validate(q, cp);
    assert.equal(v.code, 1, v.stderr + v.stdout);
    assert.equal(v.json.overall_status, 'FAILED');
    assert.equal(v.json.rollback_executed, true);
    const rr = v.json.rollback_result;
    assert.equal(rr.ok, true, JSON.stringify(rr));
    assert.equal(rr.method, 'undo_cutover');
    assert.deepEqual(rr.aliases, [{ alias: 'docs', collection: a }]);
    assert.deepEqual(rr.removed, [b]);
    assert.deepEqual([...q.aliases], [['docs', a]], 'the alias points back at the previous collection');
    assert.deepEqual([...q.collections.keys()], [a], 'the failed run\'s collection is dropped; no real collection named docs');
    assert.deepEqual([...q.collections.get(a)!.points], firstPoints, 'the previous collection untouched');
    // run 1 was finalized by run 2's cutover (--keep-previous 1); run 2 by the rollback.
    assert.deepEqual((await journal(cp)).map((e) => e.state), ['finalized', 'finalized']);
    assert.match(v.stdout, new RegExp(`"method": "undo_cutover"`));

    const u = await runCli(['migrate', '--undo', '--json', '--checkpoint-dir', cp]);
    assert.equal(u.code, 2, u.stderr + u.stdout);
    assert.match(u.stderr, /no cutover to reverse/);
    assert.deepEqual([...q.aliases], [['docs', a]]);
    assert.deepEqual(q.violations, []);
  });

  it('first run FAILED: the alias is removed and the run\'s collection dropped: the target is as before the migration (empty)', async () => {
    const q = await standin();
    const cp = path.join(setup.root, 'cp-one');
    const r = await migrate(q, cp);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    tamper(q);
    const v = await validate(q, cp);
    assert.equal(v.code, 1, v.stderr + v.stdout);
    assert.equal(v.json.rollback_result.ok, true, JSON.stringify(v.json.rollback_result));
    assert.deepEqual(v.json.rollback_result.aliases, [{ alias: 'docs', collection: null }]);
    assert.deepEqual([...q.aliases], []);
    assert.deepEqual([...q.collections.keys()], []);
    assert.deepEqual((await journal(cp)).map((e) => e.state), ['finalized']);
    assert.deepEqual(q.violations, []);
  });
});
