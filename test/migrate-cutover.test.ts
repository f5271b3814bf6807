/**
 * Staged import and cutover (issue 17, section 3), against real Chroma servers: records go into
 * `NAME__ferry_<run>` collections, the gate judges them, and only a passed gate renames them to
 * the live names (an existing NAME set aside as `NAME__ferry_prev_<run>`). A failed gate leaves
 * the target exactly as before; `--undo` renames back; `--finalize` and `--keep-previous` drop
 * previous versions; an interrupted cutover is finished by `--resume`. Faults are injected by a
 * proxy at a known request (test/helpers/fault-proxy.ts).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { cutoverServers } from './helpers/cutover-servers.ts';
import { runCli } from './helpers/deploy-env.ts';
import { dumpServed } from './helpers/served-content.ts';

describe('migrate: staged import and cutover', () => {
  const setup = cutoverServers('ferry-cutover-', [['alpha', 120, 7], ['beta', 50, 8]]);
  const target = setup.target;
  const cpDir = setup.cpDir;
  const migrate = (targetUrl: string, checkpointDir: string, extra: string[] = []) => runCli(setup.migrateArgs(targetUrl, checkpointDir, extra));
  const cutoverCmd = (action: string, checkpointDir: string, extra: string[] = []) => runCli(['migrate', action, '--yes', '--json', '--checkpoint-dir', checkpointDir, ...extra]);
  const names = async (url: string) => [...(await dumpServed(url)).keys()].sort();
  const ids = (d: Awaited<ReturnType<typeof dumpServed>>, name: string) => [...d.get(name)!.records.keys()].sort();

  it('a failed gate drops the staging collections: the target is exactly as before (collections and records)', async () => {
    const t = await target();
    const before = await dumpServed(t.url);
    const proxy = await setup.proxy(t.url, { flipFirstUpsert: true });
    const cp = cpDir();
    const r = await migrate(proxy.url, cp);
    assert.equal(r.code, 1, r.stderr + r.stdout);
    assert.equal(r.json.ok, false);
    assert.match(r.json.error, /verify: 1 problems.*staging collections dropped \(2\)/);
    assert.deepEqual(await dumpServed(t.url), before, 'same collection list, same records');
    assert.equal(proxy.renames, 0, 'nothing renamed');
    // The fault was once: --resume imports again into fresh staging collections and cuts over.
    const resumed = await migrate(proxy.url, cp, ['--resume']);
    assert.equal(resumed.code, 0, resumed.stderr + resumed.stdout);
    assert.equal(resumed.json.import.batchesSkipped, 0);
    assert.deepEqual(await names(t.url), ['alpha', `alpha__ferry_prev_${r.json.runId}`, 'beta', 'keep_me']);
  });

  it('a passed gate cuts over: staging renamed to the live names, the old alpha kept aside; --undo renames back; --finalize drops', async () => {
    const t = await target();
    const before = await dumpServed(t.url);
    const cp = cpDir();
    const r = await migrate(t.url, cp);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const run = r.json.runId as string;
    assert.deepEqual(r.json.cutover.previous, [`alpha__ferry_prev_${run}`]);
    const after = await dumpServed(t.url);
    assert.deepEqual([...after.keys()].sort(), ['alpha', `alpha__ferry_prev_${run}`, 'beta', 'keep_me']);
    const src = await dumpServed(setup.source.url);
    assert.deepEqual(ids(after, 'alpha'), ids(src, 'alpha'));
    assert.deepEqual(ids(after, 'beta'), ids(src, 'beta'));
    assert.deepEqual(after.get(`alpha__ferry_prev_${run}`), before.get('alpha'), 'the previous alpha, records and all');
    assert.deepEqual(after.get('keep_me'), before.get('keep_me'));

    const u = await cutoverCmd('--undo', cp);
    assert.equal(u.code, 0, u.stderr + u.stdout);
    const undone = await dumpServed(t.url);
    assert.deepEqual([...undone.keys()].sort(), ['alpha', `alpha__ferry_${run}`, 'beta__ferry_' + run, 'keep_me']);
    assert.deepEqual(undone.get('alpha'), before.get('alpha'), 'the live alpha is the old one again');
    assert.deepEqual(ids(undone, `alpha__ferry_${run}`), ids(src, 'alpha'), 'the migrated one kept under its staging name');
    const again = await cutoverCmd('--undo', cp);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /no cutover to reverse/);

    const f = await cutoverCmd('--finalize', cp);
    assert.equal(f.code, 0, f.stderr + f.stdout);
    assert.deepEqual(await dumpServed(t.url), before, 'after undo and finalize: exactly the target before the migration');
  });

  it('--keep-previous 1 (default): a second cutover drops the first run\'s previous version; --finalize drops the rest', async () => {
    const t = await target();
    const cp = cpDir();
    const r1 = await migrate(t.url, cp);
    assert.equal(r1.code, 0, r1.stderr + r1.stdout);
    const r2 = await migrate(t.url, cp);
    assert.equal(r2.code, 0, r2.stderr + r2.stdout);
    const [a, b] = [r1.json.runId, r2.json.runId];
    assert.deepEqual(r2.json.cutover.dropped, [`alpha__ferry_prev_${a}`]);
    assert.deepEqual(await names(t.url), ['alpha', `alpha__ferry_prev_${b}`, 'beta', `beta__ferry_prev_${b}`, 'keep_me']);
    const f = await cutoverCmd('--finalize', cp);
    assert.equal(f.code, 0, f.stderr + f.stdout);
    assert.deepEqual(await names(t.url), ['alpha', 'beta', 'keep_me']);
  });

  it('a cutover whose rename is refused between two renames is reversed by the run, and done by --resume', async () => {
    const t = await target();
    const before = await dumpServed(t.url);
    const proxy = await setup.proxy(t.url, { failRename: 2 }); // 1: alpha set aside; 2: staging -> alpha refused
    const cp = cpDir();
    const r = await migrate(proxy.url, cp);
    assert.equal(r.code, 1, r.stderr + r.stdout);
    const run = r.json.runId as string;
    assert.deepEqual(await names(t.url), ['alpha', `alpha__ferry_${run}`, `beta__ferry_${run}`, 'keep_me'], 'alpha set aside and back: none cut over');
    assert.deepEqual((await dumpServed(t.url)).get('alpha'), before.get('alpha'));
    const journal = JSON.parse(await fs.readFile(path.join(cp, 'cutover-journal.json'), 'utf8'));
    assert.equal(journal.entries[0].state, 'reversed', 'journaled, then reversed (test/migrate-cutover-atomic.test.ts: a kill mid-way)');
    const resumed = await migrate(proxy.url, cp, ['--resume']);
    assert.equal(resumed.code, 0, resumed.stderr + resumed.stdout);
    assert.equal(resumed.json.resumed, true);
    const after = await dumpServed(t.url);
    assert.deepEqual([...after.keys()].sort(), ['alpha', `alpha__ferry_prev_${run}`, 'beta', 'keep_me']);
    assert.deepEqual(ids(after, 'alpha'), ids(await dumpServed(setup.source.url), 'alpha'));
    assert.deepEqual(after.get(`alpha__ferry_prev_${run}`), before.get('alpha'));
    const again = await migrate(proxy.url, cp, ['--resume']);
    assert.equal(again.code, 0, again.stderr + again.stdout);
    assert.deepEqual(await dumpServed(t.url), after, '--resume of a run that is cut over changes nothing');
  });

  it('--dry-run creates no staging collection', async () => {
    const t = await target();
    const before = await dumpServed(t.url);
    const r = await migrate(t.url, cpDir(), ['--dry-run']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(await dumpServed(t.url), before);
  });

  it('--undo and --finalize refuse in one line: no journal, or with --source-url', async () => {
    const empty = cpDir();
    await fs.mkdir(empty);
    const r = await cutoverCmd('--undo', empty);
    assert.equal(r.code, 2);
    assert.match(r.stderr.trim(), /^.*no cutover journal there.*pass the --checkpoint-dir of the migration that cut over$/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    const s = await cutoverCmd('--finalize', empty, ['--source-url', setup.source.url]);
    assert.equal(s.code, 2);
    assert.match(s.stderr, /--finalize works from the cutover journal in --checkpoint-dir; drop --source-url/);
  });
});
