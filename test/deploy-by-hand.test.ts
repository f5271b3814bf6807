/**
 * Running the deploy runbook by hand, on a `local:` target with a real Chroma server:
 * `--plan` (true, not decorative), `--from` after a crash between swap and verify, `--only`,
 * refusals when a needed result is missing, and `--step` through the prompter seam.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import pkg from 'node-sqlite3-wasm';
import { servedContentDigest } from '../testkit/content-digest.ts';
import { LocalHost } from '../lib/hosts/local.ts';
import { shQuote } from '../lib/remote/shell.ts';
import type { StepAnswer } from '../lib/engine/step-prompt.ts';
import { listFiles } from '../testkit/tree-digest.ts';
import { HostPutUploader } from '../lib/transfer/sftp.ts';
import { runDeploy } from '../runbooks/deploy-chromadb.ts';
import {
  CLI, contentDigestOfDir, deployArgs, digestTree, runCli, TEST_STATE_DIR, waitHeartbeat,
} from './helpers/deploy-env.ts';
import { localDeployEnvPerTest } from './helpers/local-deploy-env.ts';

const { Database } = pkg;
const OLD_SERVED = [['legacy', 40]];
const NEW_SERVED = [['books', 300], ['laws', 150]];

describe('deploy by hand (local:)', () => {
  const local = localDeployEnvPerTest();
  const served = local.served;
  const ferry = () => path.join(local.env.volumeOnDisk, '.ferry');

  it('--plan changes nothing, and its commands run by sh perform the deploy', async () => {
    const { env, target } = local;
    const volumeBefore = await digestTree(env.volumeOnDisk);
    const sourceBefore = await digestTree(env.source);
    const workDir = path.join(env.root, 'plan work');
    const planArgs = ['deploy', '--plan', '--source', env.source, '--target', target, '--volume', '/data', '--restart-cmd', env.restartCmd,
      '--health-url', env.url, '--health-timeout', '30s', '--chunk-size', '1MiB', '--work-dir', workDir];
    const text = await runCli(planArgs);
    assert.equal(text.code, 0, text.stderr);
    const json = await runCli([...planArgs, '--json']);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(await digestTree(env.volumeOnDisk), volumeBefore, 'the plan wrote nothing on the target');
    assert.equal(await digestTree(env.source), sourceBefore, 'nor in the source');
    await assert.rejects(fs.access(workDir), 'nor the work dir');
    assert.deepEqual(await served(), OLD_SERVED);

    const plan = json.json;
    assert.deepEqual(plan.steps.map((s: { name: string }) => s.name),
      ['preflight', 'manifest', 'backup', 'package', 'upload', 'reassemble', 'swap', 'restart', 'verify', 'cleanup']);
    for (const s of plan.steps) assert.ok(s.commands.length > 0, `${s.name} has commands`);
    assert.ok(plan.expected.chunks >= 1);
    const uploads = plan.steps.find((s: { name: string }) => s.name === 'upload').commands;
    assert.equal(uploads.filter((c: { what: string }) => c.what.startsWith('upload chunk-')).length, plan.expected.chunks);

    // The text plan is a sh script: run it as a person would paste it.
    const script = path.join(env.root, 'plan.sh');
    await fs.writeFile(script, text.stdout);
    const ran = await execa('sh', ['-e', script], { reject: false, env: { CI: 'true', CHROMA_FERRY_STATE_DIR: TEST_STATE_DIR }, timeout: 180_000 });
    assert.equal(ran.exitCode, 0, `${ran.stdout}\n${ran.stderr}`);
    assert.match(ran.stdout, new RegExp(`archive_sha256=${plan.expected.archiveSha256}`), 'the archive the plan predicted');
    assert.match(ran.stdout, /healthy/);
    assert.deepEqual(await served(), NEW_SERVED);
    assert.equal(await servedContentDigest(env.url), await contentDigestOfDir(env.source));
    assert.deepEqual(await listFiles(env.live), await listFiles(env.source));
    assert.ok((await listFiles(`${env.live}.old`)).length > 0, 'the previous live dir kept as .old');
    assert.equal((await fs.readdir(path.join(ferry(), 'backups'))).filter((f) => f.endsWith('.tar.gz')).length, 1);
    await assert.rejects(fs.access(path.join(ferry(), 'lock')), 'lock released by the plan\'s cleanup');
    assert.deepEqual(await fs.readdir(path.join(ferry(), 'incoming')), []);
    assert.deepEqual(await fs.readdir(workDir), [], 'the plan removes its own dir in the work dir, nothing else');
    assert.equal(await digestTree(env.source), sourceBefore);
  });

  /** Start a deploy whose restart hangs, and SIGKILL it once the swap is done (no unwind). */
  async function deployKilledAfterSwap(): Promise<void> {
    const { env, target } = local;
    const marker = path.join(env.root, 'restart-started');
    await fs.rm(marker, { force: true });
    const hang = `touch ${shQuote(marker)}; sleep 600`;
    const child = execa(process.execPath, [CLI, ...deployArgs(env, target, '/data', ['--restart-cmd', hang])], {
      reject: false, stdin: 'ignore', env: { CI: 'true', CHROMA_FERRY_STATE_DIR: TEST_STATE_DIR },
    });
    const end = Date.now() + 120_000;
    while (!(await fs.stat(marker).catch(() => null))) {
      assert.ok(Date.now() < end, 'the deploy reached its restart');
      await new Promise((r) => setTimeout(r, 20));
    }
    // The restart's start is recorded while its command runs: killed once the state says so.
    const stateFile = path.join(ferry(), 'state-deploy-chroma_db.json');
    const restartRecorded = async () => JSON.parse(await fs.readFile(stateFile, 'utf8').catch(() => '{}')).steps?.restart === 'running';
    while (!(await restartRecorded())) {
      assert.ok(Date.now() < end, 'the state recorded the restart\'s start');
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    await child;
    await execa('pkill', ['-f', `sleep 600`], { reject: false });
  }

  it('--from after a deploy killed between swap and verify: finishes it', async () => {
    const { env, target } = local;
    await deployKilledAfterSwap();
    // Killed: the new data is live but unverified, the lock is held by the dead run.
    assert.deepEqual(await listFiles(env.live), await listFiles(env.source));
    await fs.access(path.join(ferry(), 'lock'));
    const state = JSON.parse(await fs.readFile(path.join(ferry(), 'state-deploy-chroma_db.json'), 'utf8'));
    assert.equal(state.steps.swap, 'done');
    assert.equal(state.steps.restart, 'running');
    assert.equal(state.finished, false);

    // A new deploy is refused (lock of the stopped run) and says how to continue.
    const fresh = await runCli(deployArgs(env, target, '/data'));
    assert.equal(fresh.code, 2);
    assert.match(fresh.stderr, /stopped before restart: continue it with: chroma-ferry deploy .* --from restart;/);

    const r = await runCli(deployArgs(env, target, '/data', ['--from', 'restart']));
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.verified, true);
    assert.deepEqual(r.json.steps.map((s: { status: string }) => s.status),
      ['done', 'earlier run', 'earlier run', 'earlier run', 'earlier run', 'earlier run', 'earlier run', 'done', 'done', 'done']);
    assert.deepEqual(await served(), NEW_SERVED);
    assert.equal(await servedContentDigest(env.url), await contentDigestOfDir(env.source));
    await assert.rejects(fs.access(path.join(ferry(), 'lock')));
    assert.deepEqual(await fs.readdir(path.join(ferry(), 'incoming')), []);
    const after = JSON.parse(await fs.readFile(path.join(ferry(), 'state-deploy-chroma_db.json'), 'utf8'));
    assert.equal(after.finished, true);
    assert.equal(after.outcome, 'deployed and verified');

    // --only verify repeats the check on the recorded run's manifest.
    const again = await runCli(deployArgs(env, target, '/data', ['--only', 'verify']));
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.json.verified, true);
    await assert.rejects(fs.access(path.join(ferry(), 'lock')), '--only releases the lock it took');
  });

  it('--from after the kill, when the new data cannot be served: rolled back cleanly', async () => {
    const { env, target } = local;
    const liveFiles = await listFiles(env.live);
    const contentBefore = await servedContentDigest(env.url);
    await deployKilledAfterSwap();
    // The swapped-in data turns out to be unservable (a migration the server does not know; a
    // source like that is refused by the preflight, so it is planted after the swap).
    const db = new Database(path.join(env.live, 'chroma.sqlite3'));
    db.run("insert into migrations (dir, version, filename, sql, hash) values ('sysdb', 99, '00099-future.sqlite.sql', 'select 1', 'x')");
    db.close();
    await fs.rm(path.join(env.live, 'chroma.sqlite3.lock'), { recursive: true, force: true });
    const r = await runCli(deployArgs(env, target, '/data', ['--from', 'restart', '--health-timeout', '8s']));
    assert.equal(r.code, 1, r.stderr + r.stdout);
    assert.equal(r.json.rolledBack, true);
    assert.ok(r.json.failedDir?.includes('chroma_db.failed-'), 'the rejected data is kept');
    await waitHeartbeat(env.url, 20_000);
    assert.deepEqual(await served(), OLD_SERVED);
    assert.deepEqual(await listFiles(env.live), liveFiles);
    assert.equal(await servedContentDigest(env.url), contentBefore);
    await assert.rejects(fs.access(path.join(ferry(), 'lock')));
    const state = JSON.parse(await fs.readFile(path.join(ferry(), 'state-deploy-chroma_db.json'), 'utf8'));
    assert.equal(state.steps.swap, 'undone');
    // After the rollback, --from swap refuses: the swap's input (a verified NAME.new) is gone.
    const swapAgain = await runCli(deployArgs(env, target, '/data', ['--from', 'swap']));
    assert.equal(swapAgain.code, 2, swapAgain.stderr);
    assert.match(swapAgain.stderr, /swap needs the result of reassemble/);
  });

  it('after the kill, unlock + rollback instead of --from: the old data back, and a new deploy may start', async () => {
    const { env, target } = local;
    const contentBefore = await servedContentDigest(env.url);
    await deployKilledAfterSwap();
    const volume = ['--target', target, '--volume', '/data', '--yes'];
    assert.equal((await runCli(['unlock', ...volume])).code, 0);
    const rb = await runCli(['rollback', ...volume, '--restart-cmd', env.restartCmd, '--health-url', env.url, '--json']);
    assert.equal(rb.code, 0, rb.stderr + rb.stdout);
    assert.equal(await servedContentDigest(env.url), contentBefore);
    const state = JSON.parse(await fs.readFile(path.join(ferry(), 'state-deploy-chroma_db.json'), 'utf8'));
    assert.equal(state.finished, true);
    assert.match(state.outcome, /rolled back by rollback run/);
    const r = await runCli(deployArgs(env, target, '/data'));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await served(), NEW_SERVED);
  });

  it('--from refuses without a recorded run, and for another source', async () => {
    const { env, target } = local;
    const none = await runCli(deployArgs(env, target, '/data', ['--from', 'swap']));
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no recorded deploy/);
    assert.equal(none.stderr.trim().split('\n').length, 1);
    const ok = await runCli(deployArgs(env, target, '/data', ['--only', 'manifest']));
    assert.equal(ok.code, 0, ok.stderr);
    const other = path.join(env.root, 'other source');
    await fs.cp(env.source, other, { recursive: true });
    const wrong = await runCli(['deploy', '--source', other, ...deployArgs(env, target, '/data', ['--from', 'package']).slice(3)]);
    assert.equal(wrong.code, 2, wrong.stderr);
    assert.match(wrong.stderr, /is of .*source db, not .*other source/);
  });

  it('--step: skip a step whose result is needed refuses; abort before the swap unwinds', async () => {
    const { env } = local;
    const host = new LocalHost(path.join(env.root, 'target'), env.restartCmd);
    const run = (answers: StepAnswer[]) => {
      const asked: string[] = [];
      return {
        asked,
        summary: runDeploy({
          source: env.source, host, uploader: new HostPutUploader(host), volume: '/data', dbDir: 'chroma_db', chunkSize: 1 << 20,
          healthUrl: env.url, healthTimeoutMs: 30_000, keepBackups: 3, uploadConcurrency: 2, output: 'plain',
          signal: new AbortController().signal, workDir: path.join(env.root, 'step work'),
          prompter: { async ask(step) { asked.push(step); return answers.shift() ?? 'continue'; }, close() {} },
        }),
      };
    };
    const liveBefore = await digestTree(env.live);

    // Abort before the swap: lock released, NAME.new removed, live untouched.
    const a = run(['continue', 'continue', 'skip', 'continue', 'continue', 'continue', 'abort']);
    const aborted = await a.summary;
    assert.equal(aborted.ok, false);
    assert.match(aborted.error ?? '', /aborted at the prompt before swap/);
    assert.deepEqual(a.asked, ['preflight', 'manifest', 'backup', 'package', 'upload', 'reassemble', 'swap']);
    assert.equal(aborted.steps.find((s) => s.name === 'backup')!.status, 'skipped');
    await assert.rejects(fs.access(path.join(ferry(), 'lock')));
    await assert.rejects(fs.access(`${env.live}.new`));
    assert.deepEqual(await served(), OLD_SERVED);
    assert.deepEqual(aborted.rollback.map((u) => u.name), ['reassemble', 'lock']);
    assert.equal(await digestTree(env.live), liveBefore, 'the live dir is untouched');
    assert.deepEqual((await fs.readdir(env.volumeOnDisk)).sort(), ['.ferry', 'chroma_db']);
    await fs.rm(path.join(ferry(), 'state-deploy-chroma_db.json'), { force: true });

    // Skipping the package: the upload needs its result and refuses, nothing swapped.
    const b = run(['continue', 'continue', 'continue', 'skip']);
    const refused = await b.summary.catch((e: Error) => e);
    assert.ok(refused instanceof Error, 'a refusal before the swap is a user error');
    assert.match(refused.message, /upload needs the result of package, which was skipped/);
    assert.deepEqual(await served(), OLD_SERVED);
    await assert.rejects(fs.access(path.join(ferry(), 'lock')));
  });
});
