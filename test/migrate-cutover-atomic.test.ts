/**
 * The cutover of several collections as one unit, against real Chroma servers behind the fault
 * proxy (test/helpers/fault-proxy.ts): a rename refused part-way reverses the renames made (none
 * cut over); a run SIGKILLed while a rename is held at the proxy (between two renames, a known
 * point) is ended by the next command: `--undo` (none) or `--resume` (all), or none when the
 * target no longer allows all (decided from what the target holds, not from the journal); and a
 * new run is refused while that cutover is half done.
 *
 * Renames in order: 1 alpha -> alpha__ferry_prev_<run>, 2 alpha__ferry_<run> -> alpha,
 * 3 beta__ferry_<run> -> beta, 4 gamma__ferry_<run> -> gamma (beta and gamma are new on the target).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { execa } from 'execa';
import { chromaClientFor } from '../lib/chroma/client.ts';
import { cutoverServers } from './helpers/cutover-servers.ts';
import { CLI, runCli, TEST_STATE_DIR } from './helpers/deploy-env.ts';
import type { FaultProxy } from './helpers/fault-proxy.ts';
import { dumpServed } from './helpers/served-content.ts';

describe('migrate: cutover of several collections, all or none', () => {
  const setup = cutoverServers('ferry-cutover-atomic-', [['alpha', 60, 7], ['beta', 30, 8], ['gamma', 20, 9]]);
  let sourceDump: Awaited<ReturnType<typeof dumpServed>>;

  before(async () => {
    sourceDump = await dumpServed(setup.source.url);
  });

  /** A target with a live `alpha` (other records than the source's) and an unrelated `keep_me`, behind a fault proxy. */
  async function target(fault: { failRename?: number; holdRename?: number }): Promise<{ url: string; proxy: FaultProxy; before: Awaited<ReturnType<typeof dumpServed>> }> {
    const s = await setup.target();
    const proxy = await setup.proxy(s.url, fault);
    return { url: s.url, proxy, before: await dumpServed(s.url) };
  }

  const cpDir = setup.cpDir;
  const args = setup.migrateArgs;
  const migrate = (targetUrl: string, checkpointDir: string, extra: string[] = []) => runCli(args(targetUrl, checkpointDir, extra));
  const undo = (checkpointDir: string) => runCli(['migrate', '--undo', '--yes', '--json', '--checkpoint-dir', checkpointDir]);
  const names = async (url: string) => [...(await dumpServed(url)).keys()].sort();
  const journalState = async (cp: string) => JSON.parse(await fs.readFile(path.join(cp, 'cutover-journal.json'), 'utf8')).entries.at(-1).state as string;
  const runOf = async (cp: string) => JSON.parse(await fs.readFile(path.join(cp, 'migrate-checkpoint.json'), 'utf8')).runId as string;
  const staged = (run: string) => ['alpha', 'beta', 'gamma'].map((n) => `${n}__ferry_${run}`);

  /** Start a migration and SIGKILL it while the proxy holds its `holdRename`th rename. */
  async function killedAtHeldRename(url: string, proxy: FaultProxy, cp: string): Promise<void> {
    const child = execa(process.execPath, [CLI, ...args(url, cp)], { reject: false, stdin: 'ignore', env: { CI: 'true', CHROMA_FERRY_STATE_DIR: TEST_STATE_DIR } });
    const exited = child.then(() => 'exited' as const);
    const first = await Promise.race([proxy.held.then(() => 'held' as const), exited]);
    assert.equal(first, 'held', 'the migration reached the held rename');
    child.kill('SIGKILL');
    const r = await child;
    assert.equal(r.signal, 'SIGKILL');
  }

  /** All three cut over: the source's records under the live names, the old alpha set aside. */
  async function assertAllCut(url: string, run: string, before: Awaited<ReturnType<typeof dumpServed>>): Promise<void> {
    const now = await dumpServed(url);
    assert.deepEqual([...now.keys()].sort(), ['alpha', `alpha__ferry_prev_${run}`, 'beta', 'gamma', 'keep_me']);
    for (const n of ['alpha', 'beta', 'gamma']) assert.deepEqual([...now.get(n)!.records.keys()].sort(), [...sourceDump.get(n)!.records.keys()].sort(), n);
    assert.deepEqual(now.get(`alpha__ferry_prev_${run}`), before.get('alpha'));
  }

  /** None cut over: the live collections exactly as before, the migrated ones under their staging names. */
  async function assertNoneCut(url: string, run: string, before: Awaited<ReturnType<typeof dumpServed>>): Promise<void> {
    const now = await dumpServed(url);
    assert.deepEqual([...now.keys()].sort(), ['alpha', ...staged(run), 'keep_me'].sort());
    for (const n of ['alpha', 'keep_me']) assert.deepEqual(now.get(n), before.get(n), n);
    for (const n of ['alpha', 'beta', 'gamma']) assert.deepEqual([...now.get(`${n}__ferry_${run}`)!.records.keys()].sort(), [...sourceDump.get(n)!.records.keys()].sort());
  }

  it('a rename refused after alpha is cut over: the run reverses it (none cut over, exit 1, one reason); --resume then cuts all three', async () => {
    const t = await target({ failRename: 3 });
    const cp = cpDir();
    const r = await migrate(t.proxy.url, cp);
    assert.equal(r.code, 1, r.stderr + r.stdout);
    const run = r.json.runId as string;
    assert.match(r.json.error, new RegExp(`cutover of run ${run} reversed, none of alpha, beta, gamma cut over: a rename failed \\(.*\\); the live collections are as before it`));
    assert.equal(t.proxy.renames, 5, '2 forward renames, the refused one, 2 back');
    await assertNoneCut(t.url, run, t.before);
    assert.equal(await journalState(cp), 'reversed');
    const resumed = await migrate(t.proxy.url, cp, ['--resume']);
    assert.equal(resumed.code, 0, resumed.stderr + resumed.stdout);
    await assertAllCut(t.url, run, t.before);
    assert.equal(await journalState(cp), 'done');
  });

  it('SIGKILLed between alpha and beta: a new run is refused; --undo ends with none cut over; --resume then cuts all three', async () => {
    const t = await target({ holdRename: 3 });
    const cp = cpDir();
    await killedAtHeldRename(t.proxy.url, t.proxy, cp);
    const run = await runOf(cp);
    assert.equal(await journalState(cp), 'cutting');
    assert.deepEqual(await names(t.url), ['alpha', `alpha__ferry_prev_${run}`, `beta__ferry_${run}`, `gamma__ferry_${run}`, 'keep_me'], 'half cut over');
    const half = await dumpServed(t.url);

    const fresh = await migrate(t.proxy.url, cp);
    assert.equal(fresh.code, 2, fresh.stderr + fresh.stdout);
    assert.equal(fresh.stderr.trim().split('\n').length, 1, fresh.stderr);
    assert.match(fresh.stderr, new RegExp(`the cutover of run ${run} on .* was interrupted \\(alpha, beta, gamma\\); finish it with migrate --resume or reverse it with migrate --undo before a new run`));
    assert.deepEqual(await dumpServed(t.url), half, 'the refused run wrote nothing');

    const u = await undo(cp);
    assert.equal(u.code, 0, u.stderr + u.stdout);
    await assertNoneCut(t.url, run, t.before);
    assert.equal(await journalState(cp), 'undone');
    const resumed = await migrate(t.proxy.url, cp, ['--resume']);
    assert.equal(resumed.code, 0, resumed.stderr + resumed.stdout);
    await assertAllCut(t.url, run, t.before);
  });

  it('SIGKILLed between setting alpha aside and renaming its staging collection (no alpha at all): --resume cuts all three', async () => {
    const t = await target({ holdRename: 2 });
    const cp = cpDir();
    await killedAtHeldRename(t.proxy.url, t.proxy, cp);
    const run = await runOf(cp);
    assert.deepEqual(await names(t.url), [`alpha__ferry_${run}`, `alpha__ferry_prev_${run}`, `beta__ferry_${run}`, `gamma__ferry_${run}`, 'keep_me']);
    const resumed = await migrate(t.proxy.url, cp, ['--resume']);
    assert.equal(resumed.code, 0, resumed.stderr + resumed.stdout);
    await assertAllCut(t.url, run, t.before);
  });

  it('SIGKILLed half-way, then a staging collection is gone: --resume cannot cut all, so it reverses alpha (none cut over) and says why', async () => {
    const t = await target({ holdRename: 3 });
    const cp = cpDir();
    await killedAtHeldRename(t.proxy.url, t.proxy, cp);
    const run = await runOf(cp);
    await chromaClientFor(t.url).deleteCollection({ name: `beta__ferry_${run}` });
    const r = await migrate(t.proxy.url, cp, ['--resume']);
    assert.equal(r.code, 1, r.stderr + r.stdout);
    assert.match(r.json.error, new RegExp(`reversed, none of alpha, beta, gamma cut over: beta cannot be cut over: neither beta nor its staging collection beta__ferry_${run} exists`));
    const now = await dumpServed(t.url);
    assert.deepEqual([...now.keys()].sort(), ['alpha', `alpha__ferry_${run}`, `gamma__ferry_${run}`, 'keep_me']);
    assert.deepEqual(now.get('alpha'), t.before.get('alpha'), 'the live alpha is the one from before');
    assert.equal(await journalState(cp), 'reversed');
  });
});
