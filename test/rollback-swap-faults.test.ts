/**
 * Faults in the middle of a rollback's swap (issue 15, 1 and 2), on a `local:` target with a real
 * Chroma server: the rollback's swap is the deploy's journaled, detached transaction, so what the
 * user runs next (rollback again, deploy, unlock) reaches a verified state, no data is lost and
 * NAME is never missing afterwards. Faults come at a known point from the `mv` wrapper first on
 * the PATH of the remote side (test/helpers/swap-faults.ts): it kills the rollback's swap worker
 * and its CLI right after the first rename (NAME -> NAME.failed-<stamp>), or the CLI right after
 * the last one. The killed CLI leaves its volume lock: the next rollback or deploy refuses in one
 * line naming `unlock`, which (run as printed) clears the lock and reverses the interrupted swap;
 * the command then goes through. Printed hints are run exactly as printed (by `sh -c`,
 * `chroma-ferry` on PATH).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { beforeEach, describe, it } from 'node:test';
import { execa } from 'execa';
import { listCollectionCounts } from '../lib/chroma/http.ts';
import { listFiles } from '../testkit/tree-digest.ts';
import { CLI, deployArgs, runCli, waitHeartbeat, type CliResult, type DeployEnv } from './helpers/deploy-env.ts';
import { mvWrapper, type MvWrapper } from './helpers/swap-faults.ts';
import { faultPlayground } from './helpers/fault-playground.ts';

const OLD_SERVED = [['legacy', 40]];
const NEW_SERVED = [['books', 300], ['laws', 150]];

/**
 * The renames of a rollback's swap of `chroma_db` from NAME.old, as wrapper matches: NAME to
 * NAME.failed-<UTC stamp> (its name ends with the stamp's `Z`), then NAME.old to NAME.
 */
const ROLLBACK_RENAMES = {
  liveToFailed: { from: '/chroma_db', to: 'Z' },
  oldToLive: { from: '/chroma_db.old', to: '/chroma_db' },
};

describe('faults during a rollback\'s swap (local:)', () => {
  const playground = faultPlayground();
  let env: DeployEnv;
  let target: string;
  let wrap: MvWrapper;
  let oldFiles: string[];
  let newFiles: string[];

  beforeEach(async () => {
    ({ env, target, oldFiles, newFiles } = playground.current);
    wrap = await mvWrapper(path.join(env.root, 'fault'));
    // A verified deploy: the new data live, the old data in NAME.old.
    const d = await runCli(deployArgs(env, target, '/data'));
    assert.equal(d.code, 0, d.stderr + d.stdout);
  });

  const old = () => `${env.live}.old`;
  const served = async () => (await listCollectionCounts(env.url)).map((c) => [c.name, c.count]);
  const cliEnv = () => playground.cliEnv(wrap.binDir);
  const rollbackArgs = () => ['rollback', '--target', target, '--volume', '/data', '--restart-cmd', env.restartCmd, '--health-url', env.url, '--health-timeout', '30s', '--yes', '--json'];
  const run = (args: string[]) => runCli(args, { env: { PATH: cliEnv().PATH } });
  /** A rollback started in the background, with the mv wrapper on its PATH. */
  const startRollback = () => execa(process.execPath, [CLI, ...rollbackArgs()], { reject: false, stdin: 'ignore', env: cliEnv() });

  /** The dirs NAME.failed-* of the volume, with their files. */
  async function failedDirs(): Promise<string[][]> {
    const names = (await fs.readdir(env.volumeOnDisk)).filter((n) => n.startsWith('chroma_db.failed-')).sort();
    return Promise.all(names.map((n) => listFiles(path.join(env.volumeOnDisk, n))));
  }

  /** Worker and CLI killed right after NAME -> NAME.failed-<stamp>: NAME is missing, nothing is lost. */
  async function killedBetweenRenames(): Promise<void> {
    const child = startRollback();
    await wrap.arm({ ...ROLLBACK_RENAMES.liveToFailed, action: 'kill-worker-and-pid', pid: child.pid! });
    assert.equal((await child).signal, 'SIGKILL');
    assert.ok(await wrap.fired(), 'the fault fired');
    await assert.rejects(fs.access(env.live), 'killed half-way: NAME is missing');
    assert.deepEqual(await failedDirs(), [newFiles], 'the replaced data is in NAME.failed-<stamp>');
    assert.deepEqual(await listFiles(old()), oldFiles, 'the data to put back is still NAME.old');
    const journal = JSON.parse(await fs.readFile(path.join(env.volumeOnDisk, '.ferry', 'swap-journal-chroma_db.json'), 'utf8'));
    assert.equal(journal.phase, 'old-moved');
    assert.equal(journal.rollback.from, 'old');
  }

  /** `r` refused in one line (exit 2, nothing changed) naming the unlock of the killed run's lock; that unlock, run as printed. */
  async function unlockAsPrinted(r: CliResult): Promise<string> {
    assert.equal(r.code, 2, r.stderr + r.stdout);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /another run holds the deploy lock on .* \(rollback by /);
    const hint = /clear it with: (chroma-ferry unlock .*)$/.exec(lines[0]!)?.[1];
    assert.ok(hint, lines[0]);
    const un = await execa('sh', ['-c', hint], { reject: false, stdin: 'ignore', env: cliEnv(), timeout: 240_000 });
    assert.equal(un.exitCode, 0, `${un.stderr}${un.stdout}`);
    await assert.doesNotReject(fs.access(env.live), 'NAME is there after the unlock');
    return String(un.stdout);
  }

  async function assertVerified(what: string): Promise<void> {
    const id = (await fs.readFile(path.join(env.live, '.ferry-data-id'), 'utf8')).trim();
    const verified = (await fs.readFile(path.join(env.volumeOnDisk, '.ferry', 'verified-chroma_db'), 'utf8')).trim();
    assert.equal(id, verified, `${what}: NAME holds the last verified data`);
    await assert.rejects(fs.access(path.join(env.volumeOnDisk, '.ferry', 'lock')), `${what}: the lock is released`);
  }

  it('worker and CLI killed between the rollback\'s renames; rollback again names unlock, which reverses it; then the rollback serves the old data, the new is kept', async () => {
    await killedBetweenRenames();
    const un = await unlockAsPrinted(await run(rollbackArgs()));
    assert.match(un, /chroma_db: reversed an interrupted swap; clean/);
    const again = await run(rollbackArgs());
    assert.equal(again.code, 0, again.stderr + again.stdout);
    await waitHeartbeat(env.url, 20_000);
    assert.deepEqual(await served(), OLD_SERVED);
    assert.deepEqual(await listFiles(env.live), oldFiles);
    assert.deepEqual(await failedDirs(), [newFiles], 'the replaced data is kept once, in the new NAME.failed-<stamp>');
    await assertVerified('rollback again');
  });

  it('worker and CLI killed between the rollback\'s renames; a deploy names unlock, which reverses it; then the deploy verifies', async () => {
    await killedBetweenRenames();
    await unlockAsPrinted(await run(deployArgs(env, target, '/data')));
    const d = await run(deployArgs(env, target, '/data'));
    assert.equal(d.code, 0, d.stderr + d.stdout);
    assert.deepEqual(await served(), NEW_SERVED);
    assert.deepEqual(await listFiles(env.live), newFiles);
    assert.deepEqual(await listFiles(old()), newFiles, 'the data live before (put back by the reversal) is NAME.old');
    assert.deepEqual(await failedDirs(), [], 'the reversal took NAME.failed-<stamp> back to NAME');
    await assertVerified('deploy');
  });

  it('worker and CLI killed between the rollback\'s renames; unlock reverses it (the verified data live again), then a rollback serves the old data', async () => {
    await killedBetweenRenames();
    const un = await run(['unlock', '--target', target, '--volume', '/data', '--yes']);
    assert.equal(un.code, 0, un.stderr);
    assert.match(un.stdout, /chroma_db: reversed an interrupted swap; clean/);
    assert.deepEqual(await listFiles(env.live), newFiles, 'the verified data is NAME again');
    assert.deepEqual(await listFiles(old()), oldFiles);
    await assertVerified('unlock');
    const rb = await run(rollbackArgs());
    assert.equal(rb.code, 0, rb.stderr + rb.stdout);
    await waitHeartbeat(env.url, 20_000);
    assert.deepEqual(await served(), OLD_SERVED);
    await assertVerified('rollback after unlock');
  });

  it('CLI killed right after the rollback\'s renames: a deploy is refused naming the rollback that, as printed, checks the data put back (not one further back)', async () => {
    const child = startRollback();
    await wrap.arm({ ...ROLLBACK_RENAMES.oldToLive, action: 'kill-pid', pid: child.pid! });
    await child;
    assert.ok(await wrap.fired());
    assert.deepEqual(await listFiles(env.live), oldFiles, 'the old data is NAME');
    await assert.rejects(fs.access(old()), 'NAME.old was put back');

    const un = await unlockAsPrinted(await run(deployArgs(env, target, '/data')));
    assert.match(un, /chroma_db: needs-verify: .*put back .*not checked yet; next: chroma-ferry rollback/);
    const refused = await run(deployArgs(env, target, '/data'));
    assert.equal(refused.code, 2, refused.stderr + refused.stdout);
    const lines = refused.stderr.trim().split('\n');
    assert.equal(lines.length, 1, refused.stderr);
    const hint = /never checked it: finish it with: (chroma-ferry rollback .*)$/.exec(lines[0]!)?.[1];
    assert.ok(hint, lines[0]);
    const rb = await execa('sh', ['-c', hint], { reject: false, stdin: 'ignore', env: cliEnv(), timeout: 240_000 });
    assert.equal(rb.exitCode, 0, `${rb.stderr}${rb.stdout}`);
    const s = JSON.parse(String(rb.stdout));
    assert.match(s.steps.find((st: { name: string }) => st.name === 'preflight').note, /already holds the data rollback run \w+ put back \(never checked\): restart and check it/);
    assert.equal(s.steps.find((st: { name: string }) => st.name === 'swap').status, 'skipped');
    await waitHeartbeat(env.url, 20_000);
    assert.deepEqual(await served(), OLD_SERVED);
    assert.deepEqual(await failedDirs(), [newFiles], 'the replaced data is kept');
    await assertVerified('the rollback as printed');
    // Settled: the same deploy now goes through.
    const d = await run(deployArgs(env, target, '/data'));
    assert.equal(d.code, 0, d.stderr + d.stdout);
    assert.deepEqual(await served(), NEW_SERVED);
  });
});
