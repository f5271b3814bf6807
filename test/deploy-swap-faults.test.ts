/**
 * Faults in the middle of a deploy's swap, on a `local:` target with a real Chroma server, and
 * what the user does next (deploy again, the `--from` it names, `unlock`, `rollback`): each ends
 * verified, the volume always keeps a live NAME with the old or the new data, and the last good
 * data is never lost. Faults come at a known point from an `mv` wrapper first on the PATH of the
 * remote side (test/helpers/swap-faults.ts). Every hint is run exactly as printed (by `sh -c`,
 * with `chroma-ferry` on PATH).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { beforeEach, describe, it } from 'node:test';
import { execa } from 'execa';
import { servedContentDigest } from '../testkit/content-digest.ts';
import { listCollectionCounts } from '../lib/chroma/http.ts';
import { freePort } from '../lib/chroma/server.ts';
import { listFiles } from '../testkit/tree-digest.ts';
import { REFUSALS } from '../lib/remote/refusals.ts';
import { CLI, deployArgs, digestTree, runCli, sampleDbCopy, waitHeartbeat, type CliResult, type DeployEnv } from './helpers/deploy-env.ts';
import { mvWrapper, renames, type MvWrapper } from './helpers/swap-faults.ts';
import { faultPlayground } from './helpers/fault-playground.ts';

const OLD_SERVED = [['legacy', 40]];
const NEW_SERVED = [['books', 300], ['laws', 150]];

describe('faults during the swap (local:)', () => {
  const playground = faultPlayground();
  let env: DeployEnv;
  let target: string;
  let wrap: MvWrapper;
  let oldFiles: string[];
  let newFiles: string[];
  let oldContent: string;

  beforeEach(async () => {
    ({ env, target, oldFiles, newFiles, oldContent } = playground.current);
    wrap = await mvWrapper(path.join(env.root, 'fault'));
  });

  const old = () => `${env.live}.old`;
  const served = async () => (await listCollectionCounts(env.url)).map((c) => [c.name, c.count]);
  const cliEnv = () => playground.cliEnv(wrap.binDir);
  const deploy = (extra: string[] = []) => runCli(deployArgs(env, target, '/data', extra), { env: { PATH: cliEnv().PATH } });

  /** A deploy started in the background, with the mv wrapper on its PATH. */
  const startDeploy = () => execa(process.execPath, [CLI, ...deployArgs(env, target, '/data')], { reject: false, stdin: 'ignore', env: cliEnv() });

  /** The command `re` captures from `text`, run as printed. */
  async function runHint(text: string, re: RegExp): Promise<CliResult & { hint: string }> {
    const hint = re.exec(text)?.[1];
    assert.ok(hint, `no hint matching ${re} in: ${text}`);
    const r = await execa('sh', ['-c', hint], { reject: false, stdin: 'ignore', env: cliEnv(), timeout: 240_000 });
    const out: CliResult & { hint: string } = { hint, code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
    try { out.json = JSON.parse(out.stdout); } catch { /* not JSON */ }
    return out;
  }

  const oneLine = (r: CliResult) => {
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    return lines[0]!;
  };

  /** The deploy ended verified: the new data served, the old data kept as NAME.old, the lock released. */
  async function assertDeployedAndOldKept(r: CliResult): Promise<void> {
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.verified, true);
    assert.deepEqual(await served(), NEW_SERVED);
    assert.deepEqual(await listFiles(env.live), newFiles);
    assert.deepEqual(await listFiles(old()), oldFiles, 'the previous data is kept as NAME.old');
    await assert.rejects(fs.access(path.join(env.volumeOnDisk, '.ferry', 'lock')));
  }

  it('CLI killed right after the renames: a new deploy is refused and names the --from that, run as printed, verifies', async () => {
    const child = startDeploy();
    await wrap.arm({ ...renames().newToLive, action: 'kill-pid', pid: child.pid! });
    assert.equal((await child).signal, 'SIGKILL');
    assert.ok(await wrap.fired(), 'the fault fired');
    assert.deepEqual(await listFiles(env.live), newFiles, 'the new data is live');
    assert.deepEqual(await listFiles(old()), oldFiles, 'the old data is NAME.old');

    const again = await deploy();
    assert.equal(again.code, 2, again.stderr + again.stdout);
    const line = oneLine(again);
    const resumed = await runHint(line, /continue it with: (chroma-ferry deploy .*?); or,/);
    assert.match(resumed.hint, /--from (swap|restart)$/);
    await assertDeployedAndOldKept(resumed);
    const verifiedId = await fs.readFile(path.join(env.volumeOnDisk, '.ferry', 'verified-chroma_db'), 'utf8');
    assert.equal(await fs.readFile(path.join(env.live, '.ferry-data-id'), 'utf8'), verifiedId, 'the live data is recorded as verified');
  });

  it('CLI killed right after the renames, then unlock: deploying again is refused every time; its rollback, as printed, serves the old data', async () => {
    const child = startDeploy();
    await wrap.arm({ ...renames().newToLive, action: 'kill-pid', pid: child.pid! });
    await child;
    const un = await runCli(['unlock', '--target', target, '--volume', '/data', '--yes']);
    assert.equal(un.code, 0, un.stderr);
    let refused: CliResult | undefined;
    for (let i = 0; i < 2; i++) {
      // The same deploy again must not move the unverified data to NAME.old (and trash the old data).
      refused = await deploy();
      assert.equal(refused.code, 2, `attempt ${i + 1}: ${refused.stderr}${refused.stdout}`);
      assert.match(oneLine(refused), /swapped new data into .* and never verified it/);
      assert.deepEqual(await listFiles(old()), oldFiles);
    }
    const rb = await runHint(oneLine(refused!), /put the previous data back with: (chroma-ferry rollback .*)$/);
    assert.equal(rb.code, 0, rb.stderr + rb.stdout);
    await waitHeartbeat(env.url, 20_000);
    assert.deepEqual(await served(), OLD_SERVED);
    assert.equal(await servedContentDigest(env.url), oldContent);
    assert.deepEqual(await listFiles(env.live), oldFiles);
    // And a new deploy goes through, keeping the (verified) old data as NAME.old.
    await assertDeployedAndOldKept(await deploy());
    assert.match(un.stdout, /chroma_db: needs-verify/, 'unlock said what the volume needs');
  });

  it('CLI killed right after the renames, then unlock: the deploy refused names --from restart, which as printed verifies', async () => {
    const child = startDeploy();
    await wrap.arm({ ...renames().newToLive, action: 'kill-pid', pid: child.pid! });
    await child;
    assert.equal((await runCli(['unlock', '--target', target, '--volume', '/data', '--yes'])).code, 0);
    const refused = await deploy();
    assert.equal(refused.code, 2, refused.stderr + refused.stdout);
    const resumed = await runHint(oneLine(refused), /finish it with: (chroma-ferry deploy .*? --from restart);/);
    await assertDeployedAndOldKept(resumed);
  });

  it('the swap worker killed between the two renames: the run finishes its own swap and verifies', async () => {
    const child = startDeploy();
    await wrap.arm({ ...renames().liveToOld, action: 'kill-worker' });
    const r = await child;
    assert.ok(await wrap.fired(), 'the fault fired');
    const s = JSON.parse(String(r.stdout));
    await assertDeployedAndOldKept({ code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), json: s });
    assert.ok(s.warnings.some((w: string) => /swap: swapped; this run finished it/.test(w)), s.warnings.join('\n'));
  });

  it('worker and CLI killed between the renames (no NAME): the --from a new deploy names, run as printed, verifies; the old data is kept', async () => {
    const child = startDeploy();
    await wrap.arm({ ...renames().liveToOld, action: 'kill-worker-and-pid', pid: child.pid! });
    await child;
    assert.ok(await wrap.fired());
    await assert.rejects(fs.access(env.live), 'killed half-way: NAME is missing');
    assert.deepEqual(await listFiles(old()), oldFiles);
    assert.deepEqual(await listFiles(`${env.live}.new`), newFiles);

    const again = await deploy();
    assert.equal(again.code, 2, again.stderr + again.stdout);
    const resumed = await runHint(oneLine(again), /continue it with: (chroma-ferry deploy .*?); or,/);
    await assertDeployedAndOldKept(resumed);
  });

  it('worker and CLI killed between the renames, then unlock: the swap is reversed (old data live) and a new deploy verifies', async () => {
    const child = startDeploy();
    await wrap.arm({ ...renames().liveToOld, action: 'kill-worker-and-pid', pid: child.pid! });
    await child;
    await assert.rejects(fs.access(env.live));
    const un = await runCli(['unlock', '--target', target, '--volume', '/data', '--yes']);
    assert.equal(un.code, 0, un.stderr);
    assert.deepEqual(await listFiles(env.live), oldFiles, 'the old data is live again');
    assert.match(un.stdout, /chroma_db: reversed an interrupted swap; clean/);
    await assertDeployedAndOldKept(await deploy());
  });

  it('sh -e plan.sh against a held lock stops at the lock: nothing changed on the volume, no local work dir', async () => {
    const workDir = path.join(env.root, 'plan work');
    const plan = await runCli(['deploy', '--plan', '--source', env.source, '--target', target, '--volume', '/data', '--restart-cmd', env.restartCmd,
      '--health-url', env.url, '--work-dir', workDir]);
    assert.equal(plan.code, 0, plan.stderr);
    const script = path.join(env.root, 'plan.sh');
    await fs.writeFile(script, plan.stdout);
    const lock = path.join(env.volumeOnDisk, '.ferry', 'lock');
    await fs.mkdir(lock, { recursive: true });
    await fs.writeFile(path.join(lock, 'owner.json'), `${JSON.stringify({ runId: 'otherrun0001', command: 'deploy', user: 'ana', host: 'laptop', pid: 1, startedAt: 'then' })}\n`);
    const ferryBefore = await digestTree(path.join(env.volumeOnDisk, '.ferry'));
    const entriesBefore = (await fs.readdir(env.volumeOnDisk)).sort();
    const ran = await execa('sh', ['-e', script], { reject: false, stdin: 'ignore', env: cliEnv(), timeout: 120_000 });
    assert.equal(ran.exitCode, REFUSALS['lock-held'].code, `${ran.stdout}\n${ran.stderr}`);
    assert.match(ran.stderr, /ferry_refusal=lock-held/);
    assert.equal(await digestTree(path.join(env.volumeOnDisk, '.ferry')), ferryBefore, 'nothing written in .ferry');
    assert.deepEqual((await fs.readdir(env.volumeOnDisk)).sort(), entriesBefore, 'no data dir made or moved');
    assert.deepEqual(await listFiles(env.live), oldFiles);
    await assert.rejects(fs.access(workDir), 'no local work dir either');
  });

  it('v1 -> v2 -> v3 with a wrong --health-url: the undo restores v2 unverified, and rollback serves v2 (not v1)', async () => {
    await assertDeployedAndOldKept(await deploy()); // v2
    const v2Content = await servedContentDigest(env.url);
    const v3 = path.join(env.root, 'v3 source');
    await sampleDbCopy(v3, [{ name: 'third', count: 25, dim: 8, space: 'l2' }], 5);
    const wrongUrl = `http://127.0.0.1:${await freePort()}`;
    const help = await runCli(['deploy', '--help']);
    const allowDown = /--allow-server-down/.test(help.stdout) ? ['--allow-server-down'] : [];
    const args = deployArgs(env, target, '/data', ['--health-url', wrongUrl, '--health-timeout', '3s', ...allowDown]);
    args[args.indexOf('--source') + 1] = v3;
    const r3 = await runCli(args);
    assert.equal(r3.code, 1, r3.stderr + r3.stdout);
    const state = JSON.parse(await fs.readFile(path.join(env.volumeOnDisk, '.ferry', 'state-deploy-chroma_db.json'), 'utf8'));

    const rb = await runCli(['rollback', '--target', target, '--volume', '/data', '--restart-cmd', env.restartCmd,
      '--health-url', env.url, '--health-timeout', '30s', '--yes', '--json']);
    assert.equal(rb.code, 0, rb.stderr + rb.stdout);
    await waitHeartbeat(env.url, 20_000);
    assert.deepEqual(await served(), NEW_SERVED, 'v2 served');
    assert.equal(await servedContentDigest(env.url), v2Content);
    assert.deepEqual(await listFiles(old()), oldFiles, 'v1 still kept as NAME.old');
    // What the failed deploy said and recorded.
    assert.ok(r3.json.warnings.some((w: string) => /old data restored; server not verified/.test(w)), r3.json.warnings.join('\n'));
    assert.equal(state.steps.swap, 'undone');
    assert.equal(state.outcome, 'failed; old data restored; server not verified');
  });
});
