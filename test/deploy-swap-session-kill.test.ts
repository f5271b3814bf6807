/**
 * Every process of the remote ssh session killed in the middle of the swap, right after its first
 * rename (an `mv` wrapper on the sessions' PATH through the test sshd's `SetEnv PATH`; it kills the
 * session's sshd process and everything under it, the detached swap worker included, as logind's
 * KillUserProcesses does when a session ends). Nothing on the remote finishes the swap by itself:
 * the CLI's reconnect finishes it (its own run) and verifies; with the CLI killed too, the next
 * command does. After each: NAME holds the old or the new data, the old data is kept. Real sshd,
 * real Chroma.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { execa } from 'execa';
import { listCollectionCounts } from '../lib/chroma/http.ts';
import { listFiles } from '../testkit/tree-digest.ts';
import { CLI, deployArgs, makeDeployEnv, runCli, TEST_STATE_DIR, type DeployEnv } from './helpers/deploy-env.ts';
import { startSshd, type TestSshd } from './helpers/sshd.ts';
import { chromaFerryShim, HINTS, oneLine, runPrinted, watchVolume, type VolumeWatch } from './helpers/step-kill-volume.ts';
import { mvWrapper, renames, type MvWrapper } from './helpers/swap-faults.ts';

const faultRoot = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-session-fault-'));
const wrap: MvWrapper = await mvWrapper(faultRoot);
const sshd = await startSshd({ extraConfig: [`SetEnv PATH=${wrap.binDir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`] });
const skip = sshd ? false : 'openssh-server is not installed (see the warning above)';
const NEW_SERVED = [['books', 300], ['laws', 150]];

describe('every process of the ssh session killed during the swap', { skip }, () => {
  const d = sshd as TestSshd;
  let env: DeployEnv;
  let vol: VolumeWatch;
  let oldFiles: string[];
  let shim: Awaited<ReturnType<typeof chromaFerryShim>>;
  const sshFlags = () => ['--ssh-key', d.keyFile, ...d.sshOptions.flatMap((o) => ['--ssh-option', o])];
  const args = () => deployArgs(env, d.target, env.volumeOnDisk, sshFlags());
  const journal = async () => JSON.parse(await fs.readFile(path.join(env.volumeOnDisk, '.ferry', 'swap-journal-chroma_db.json'), 'utf8'));

  before(async () => { shim = await chromaFerryShim(); });
  beforeEach(async () => {
    await env?.stop();
    await wrap.disarm();
    env = await makeDeployEnv();
    oldFiles = await listFiles(env.live);
    vol = watchVolume(env.volumeOnDisk, 'chroma_db', oldFiles, await listFiles(env.source));
  });
  after(async () => {
    await env?.stop();
    await d?.stop();
    await shim?.dispose();
    await fs.rm(faultRoot, { recursive: true, force: true });
  });

  const assertDeployed = async (r: { code: number; stdout: string; stderr: string; json?: any }) => {
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.verified, true);
    assert.deepEqual((await listCollectionCounts(env.url)).map((c) => [c.name, c.count]), NEW_SERVED);
    assert.equal(await vol.assertSafe('deployed'), 'new');
    assert.deepEqual(await listFiles(`${env.live}.old`), oldFiles, 'the old data kept as NAME.old');
    await assert.rejects(fs.access(path.join(env.volumeOnDisk, '.ferry', 'lock')));
  };

  it('the worker dies with the session: the CLI reconnects, finishes its own swap, restarts and verifies (exit 0, never 2)', async () => {
    await wrap.arm({ ...renames().liveToOld, action: 'kill-ssh-session' });
    const r = await runCli(args());
    assert.ok(await wrap.fired(), 'the session was killed at the first rename');
    await assertDeployed(r);
    assert.ok(r.json.warnings.some((w: string) => /^swap: swapped; this run finished it after: /.test(w)), r.json.warnings.join('\n'));
    assert.equal((await journal()).phase, 'done');
  });

  it('the CLI killed with the session: NAME is missing until the next deploy, refused, runs the --from it prints, which finishes the swap and verifies', async () => {
    const child = execa(process.execPath, [CLI, ...args()], { reject: false, stdin: 'ignore', env: { CI: 'true', CHROMA_FERRY_STATE_DIR: TEST_STATE_DIR } });
    await wrap.arm({ ...renames().liveToOld, action: 'kill-ssh-session', pid: child.pid! });
    assert.equal((await child).signal, 'SIGKILL');
    assert.ok(await wrap.fired());
    // Half-way and nobody left to finish it: the data is all there, NAME is not.
    await assert.rejects(fs.access(env.live));
    assert.deepEqual(await listFiles(`${env.live}.old`), oldFiles);
    assert.equal((await journal()).phase, 'old-moved');

    const again = await runCli(args(), { env: { PATH: `${shim.dir}:${process.env.PATH}` } });
    assert.equal(again.code, 2, again.stderr + again.stdout);
    const cliEnv = { CI: 'true', CHROMA_FERRY_STATE_DIR: TEST_STATE_DIR, PATH: `${shim.dir}:${process.env.PATH}` };
    const resumed = await runPrinted(oneLine(again), HINTS.continueFrom, cliEnv);
    assert.match(resumed.hint, /--from swap$/);
    await assertDeployed(resumed);
  });

  it('the CLI killed with the session, then unlock: the swap is reversed (the old data live again) and a new deploy verifies', async () => {
    const child = execa(process.execPath, [CLI, ...args()], { reject: false, stdin: 'ignore', env: { CI: 'true', CHROMA_FERRY_STATE_DIR: TEST_STATE_DIR } });
    await wrap.arm({ ...renames().liveToOld, action: 'kill-ssh-session', pid: child.pid! });
    await child;
    assert.ok(await wrap.fired());
    const un = await runCli(['unlock', '--target', d.target, '--volume', env.volumeOnDisk, ...sshFlags(), '--yes']);
    assert.equal(un.code, 0, un.stderr);
    assert.match(un.stdout, /chroma_db: reversed an interrupted swap; clean/);
    assert.equal(await vol.assertSafe('after unlock'), 'old');
    assert.deepEqual(await listFiles(env.live), oldFiles);
    await assertDeployed(await runCli(args()));
  });
});
