/**
 * Faults after the swap and around the lock, on a `local:` target with a real Chroma server.
 * Each asserts what the remote volume holds afterwards.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import pkg from 'node-sqlite3-wasm';
import { servedContentDigest } from '../testkit/content-digest.ts';
import { shQuote } from '../lib/remote/shell.ts';
import { listFiles } from '../testkit/tree-digest.ts';
import { deployArgs, digestTree, runCli, TEST_STATE_DIR, waitHeartbeat } from './helpers/deploy-env.ts';
import { localDeployEnvPerTest } from './helpers/local-deploy-env.ts';

const { Database } = pkg;
const OLD_SERVED = [['legacy', 40]];

describe('deploy faults (local:)', () => {
  const local = localDeployEnvPerTest();
  const served = local.served;

  it('a server that does not come back after the swap: auto-rollback, old data serving again', async () => {
    const { env, target } = local;
    assert.deepEqual(await served(), OLD_SERVED);
    const liveFiles = await listFiles(env.live);
    const contentBefore = await servedContentDigest(env.url);
    const flag = path.join(env.root, 'fail-next-restart');
    await fs.writeFile(flag, '');
    // The first restart stops the server and does not start it again; later restarts work.
    const restart = `if [ -e ${shQuote(flag)} ]; then rm -f ${shQuote(flag)}; kill "$(cat ${shQuote(env.pidFile)})"; exit 0; fi; ${env.restartCmd}`;
    const args = deployArgs(env, target, '/data', ['--health-timeout', '4s']);
    args[args.indexOf('--restart-cmd') + 1] = restart;
    const r = await runCli(args);
    assert.equal(r.code, 1, r.stderr);
    const s = r.json;
    assert.equal(s.ok, false);
    assert.equal(s.rolledBack, true);
    assert.match(s.error, /heartbeat|answer/i);
    assert.deepEqual(s.rollback.map((u: { name: string; ok: boolean }) => [u.name, u.ok]), [['swap', true], ['reassemble', true], ['lock', true]]);
    await waitHeartbeat(env.url, 20_000);
    assert.deepEqual(await served(), OLD_SERVED);
    assert.deepEqual(await listFiles(env.live), liveFiles);
    assert.equal(await servedContentDigest(env.url), contentBefore, 'served records after rollback');
    // The rejected data is kept aside, never deleted; the lock is released.
    assert.match(s.failedDir, /chroma_db\.failed-\d{8}T\d{6}Z$/);
    assert.deepEqual(await listFiles(s.failedDir), await listFiles(env.source));
    await assert.rejects(fs.access(path.join(env.volumeOnDisk, '.ferry', 'lock')));
  });

  it('a source built by a newer Chroma: refused before anything is uploaded or changed', async () => {
    const { env, target } = local;
    // A migration the server does not know: the server would open the dir without complaint and
    // fail later, at runtime. The preflight compares the migrations first.
    const db = new Database(path.join(env.source, 'chroma.sqlite3'));
    db.run("insert into migrations (dir, version, filename, sql, hash) values ('sysdb', 99, '00099-future.sqlite.sql', 'select 1', 'x')");
    db.close();
    await fs.rm(path.join(env.source, 'chroma.sqlite3.lock'), { recursive: true, force: true });
    const volumeBefore = await digestTree(env.volumeOnDisk);
    const contentBefore = await servedContentDigest(env.url);
    const r = await runCli(deployArgs(env, target, '/data'));
    assert.equal(r.code, 2, r.stderr + r.stdout);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    // The server's side: its live dir's migrations (python3 on this machine) or its /api/v2/version.
    assert.match(lines[0]!, /^chroma-ferry: the source needs a newer Chroma than the server: source written by a Chroma newer than 1\.5\.0 \(sysdb 99\), server Chroma (>= 1\.0\.0, < 1\.3\.0|1\.0\.0) \(.*sysdb 9\); upgrade the server to the Chroma that wrote the source first, or build the data with Chroma (>= 1\.0\.0, < 1\.3\.0|1\.0\.0)$/);
    assert.equal(await digestTree(env.volumeOnDisk), volumeBefore, 'the refused deploy changed the volume (nothing uploaded, no lock, no .ferry)');
    await assert.rejects(fs.access(path.join(env.volumeOnDisk, '.ferry')));
    assert.deepEqual(await served(), OLD_SERVED);
    assert.equal(await servedContentDigest(env.url), contentBefore, 'served records');
  });

  it('the backup, running alongside the package and upload, fails: the run stops before the swap', async () => {
    const { env, target } = local;
    // A file where the backups dir should be: the remote backup's mkdir fails, while the
    // package and upload steps go on in this process.
    await fs.mkdir(path.join(env.volumeOnDisk, '.ferry'), { recursive: true });
    await fs.writeFile(path.join(env.volumeOnDisk, '.ferry', 'backups'), 'not a directory\n');
    const liveBefore = await digestTree(env.live);
    const r = await runCli(deployArgs(env, target, '/data'));
    assert.notEqual(r.code, 0, r.stderr);
    const steps = new Map((r.json!.steps as { name: string; status: string }[]).map((st) => [st.name, st.status]));
    assert.equal(steps.get('backup'), 'failed');
    assert.equal(steps.get('package'), 'done', 'packaging ran while the backup ran');
    assert.equal(steps.get('swap'), 'not run');
    assert.equal(await digestTree(env.live), liveBefore, 'the live dir changed');
    for (const name of ['chroma_db.old', 'chroma_db.new']) {
      assert.equal(await fs.stat(path.join(env.volumeOnDisk, name)).catch(() => null), null, `${name} left behind`);
    }
    assert.equal(await fs.stat(path.join(env.volumeOnDisk, '.ferry', 'lock')).catch(() => null), null, 'lock not released');
    assert.deepEqual(await served(), OLD_SERVED);
  });

  it('a second deploy to the same volume is refused while the first holds the lock', async () => {
    const { env, target } = local;
    const first = execa(process.execPath, [path.resolve('bin/chroma-ferry.js'), ...deployArgs(env, target, '/data')], {
      reject: false, env: { CI: 'true', CHROMA_FERRY_STATE_DIR: TEST_STATE_DIR }, stdin: 'ignore',
    });
    const lock = path.join(env.volumeOnDisk, '.ferry', 'lock', 'owner.json');
    while (!(await fs.stat(lock).catch(() => null))) await new Promise((r) => setTimeout(r, 10));
    first.kill('SIGSTOP');
    try {
      // A remote command the first run started just before the stop (its state write) may still be
      // finishing: measure the volume once it has settled.
      let volumeBefore = await digestTree(env.volumeOnDisk);
      for (;;) {
        await new Promise((r) => setTimeout(r, 300));
        const again = await digestTree(env.volumeOnDisk);
        if (again === volumeBefore) break;
        volumeBefore = again;
      }
      const second = await runCli(deployArgs(env, target, '/data'));
      assert.equal(second.code, 2);
      const lines = second.stderr.trim().split('\n');
      assert.equal(lines.length, 1, second.stderr);
      assert.match(lines[0]!, /holds the deploy lock .*deploy by \S+@\S+, pid \d+, since .*chroma-ferry unlock --target/);
      assert.equal(await digestTree(env.volumeOnDisk), volumeBefore, 'the refused deploy changed the volume');
    } finally {
      first.kill('SIGCONT');
    }
    const r = await first;
    assert.equal(r.exitCode, 0, String(r.stderr));
    assert.deepEqual(await served(), [['books', 300], ['laws', 150]]);
  });

  it('SIGTERM after the swap: the stack unwinds, old data is put back', async () => {
    const { env, target } = local;
    const child = execa(process.execPath, [path.resolve('bin/chroma-ferry.js'), ...deployArgs(env, target, '/data')], {
      reject: false, env: { CI: 'true', CHROMA_FERRY_STATE_DIR: TEST_STATE_DIR }, stdin: 'ignore',
      // The unwind may take longer than execa's default 5 s before its SIGKILL on a loaded machine.
      forceKillAfterDelay: false,
    });
    // The swap's intent is on the volume: the renames are about to run (or running).
    const journal = path.join(env.volumeOnDisk, '.ferry', 'swap-journal-chroma_db.json');
    while (!(await fs.stat(journal).catch(() => null))) await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGTERM');
    const r = await child;
    assert.equal(r.exitCode, 130, String(r.stdout));
    const s = JSON.parse(String(r.stdout));
    assert.equal(s.rolledBack, true);
    assert.match(s.error, /interrupted/);
    await waitHeartbeat(env.url, 20_000);
    assert.deepEqual(await served(), OLD_SERVED);
    await assert.rejects(fs.access(path.join(env.volumeOnDisk, '.ferry', 'lock')));
  });
});
