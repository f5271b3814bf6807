/**
 * `chroma-ferry rollback` and `chroma-ferry backups` on a `local:` target with a real Chroma server.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { execa } from 'execa';
import { servedContentDigest } from '../testkit/content-digest.ts';
import { listFiles } from '../testkit/tree-digest.ts';
import { LocalHost } from '../lib/hosts/local.ts';
import type { StepAnswer } from '../lib/engine/step-prompt.ts';
import { runRollback } from '../runbooks/rollback-chromadb.ts';
import { deployArgs, digestTree, makeDeployEnv, runCli, waitHeartbeat, type DeployEnv } from './helpers/deploy-env.ts';

describe('rollback (local:)', () => {
  let env: DeployEnv;
  let target: string;
  let before: { content: string; files: string[] };
  const rollbackArgs = (extra: string[] = []) => [
    'rollback', '--target', target, '--volume', '/data', '--restart-cmd', env.restartCmd,
    '--health-url', env.url, '--health-timeout', '30s', '--yes', '--json', ...extra,
  ];

  beforeEach(async () => {
    await env?.stop();
    env = await makeDeployEnv();
    target = `local:${path.join(env.root, 'target')}`;
    before = { content: await servedContentDigest(env.url), files: await listFiles(env.live) };
    const r = await runCli(deployArgs(env, target, '/data'));
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.notEqual(await servedContentDigest(env.url), before.content);
  });
  after(async () => env?.stop());

  const assertOldServed = async () => {
    await waitHeartbeat(env.url, 20_000);
    assert.equal(await servedContentDigest(env.url), before.content, 'served records equal the pre-deploy ones');
    assert.deepEqual(await listFiles(env.live), before.files);
  };

  it('deploy, then rollback: NAME.old serves again; the deployed data is kept as NAME.failed-<stamp>', async () => {
    const deployedFiles = await listFiles(env.live);
    const r = await runCli(rollbackArgs());
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.ok, true);
    assert.deepEqual(r.json.served.map((c: { name: string }) => c.name), ['legacy']);
    await assertOldServed();
    assert.match(r.json.keptAs, /chroma_db\.failed-\d{8}T\d{6}Z$/);
    assert.deepEqual(await listFiles(r.json.keptAs), deployedFiles);
    await assert.rejects(fs.access(path.join(env.volumeOnDisk, '.ferry', 'lock')));
  });

  it('--plan to a named backup changes nothing; its commands run by sh perform the rollback', async () => {
    const backups = await runCli(['backups', '--target', target, '--volume', '/data', '--json']);
    const name = backups.json[0].name;
    const volumeBefore = await digestTree(env.volumeOnDisk);
    const args = rollbackArgs(['--backup', name, '--plan']).filter((a) => a !== '--json');
    const text = await runCli(args);
    assert.equal(text.code, 0, text.stderr);
    const json = await runCli([...args, '--json']);
    assert.deepEqual(json.json.steps.map((st: { name: string }) => st.name), ['preflight', 'stage', 'swap', 'restart', 'verify', 'cleanup']);
    assert.equal(await digestTree(env.volumeOnDisk), volumeBefore, 'the plan changed nothing');
    const script = path.join(env.root, 'rollback-plan.sh');
    await fs.writeFile(script, text.stdout);
    const ran = await execa('sh', ['-e', script], { reject: false, timeout: 120_000 });
    assert.equal(ran.exitCode, 0, `${ran.stdout}\n${ran.stderr}`);
    await assertOldServed();
    await assert.rejects(fs.access(path.join(env.volumeOnDisk, '.ferry', 'lock')));
    assert.equal((await runCli(rollbackArgs(['--backup', 'latest', '--plan']))).code, 2, '--plan needs a backup name');
  });

  it('works with the server down', async () => {
    process.kill(Number(await fs.readFile(env.pidFile, 'utf8')), 'SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    const r = await runCli(rollbackArgs());
    assert.equal(r.code, 0, r.stderr + r.stdout);
    await assertOldServed();
  });

  it('works with the live dir missing', async () => {
    await fs.rm(env.live, { recursive: true, force: true });
    const r = await runCli(rollbackArgs());
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.keptAs, undefined);
    await assertOldServed();
  });

  it('restores a named backup, verified first; backups lists it with size, date and sha256', async () => {
    const list = await runCli(['backups', '--target', target, '--volume', '/data', '--json']);
    assert.equal(list.code, 0, list.stderr);
    assert.equal(list.json.length, 1);
    const b = list.json[0];
    assert.match(b.name, /^chroma_db-\d{8}T\d{6}Z\.tar\.gz$/);
    assert.ok(b.bytes > 0);
    assert.match(b.sha256, /^[0-9a-f]{64}$/);
    assert.ok(!Number.isNaN(Date.parse(b.date)));
    // NAME.old is gone: only the backup can bring the old data back.
    await fs.rm(`${env.live}.old`, { recursive: true });
    const r = await runCli(rollbackArgs(['--backup', b.name]));
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.json.restoredFrom, new RegExp(`${b.name.replace(/\./g, '\\.')}$`));
    await waitHeartbeat(env.url, 20_000);
    assert.equal(await servedContentDigest(env.url), before.content);
  });

  it('a corrupted backup is refused before it replaces anything', async () => {
    const dir = path.join(env.volumeOnDisk, '.ferry', 'backups');
    const name = (await fs.readdir(dir)).find((f) => f.endsWith('.tar.gz'))!;
    const f = path.join(dir, name);
    const bytes = await fs.readFile(f);
    const mid = bytes.length >> 1;
    bytes.writeUInt8(bytes.readUInt8(mid) ^ 0xff, mid);
    await fs.writeFile(f, bytes);
    const volumeBefore = await digestTree(env.live);
    const r = await runCli(rollbackArgs(['--backup', 'latest']));
    assert.equal(r.code, 1, r.stderr + r.stdout);
    assert.match(r.json.error, /sha256 .* does not match the recorded/);
    assert.equal(r.json.steps.find((s: { name: string }) => s.name === 'swap').status, 'not run');
    assert.equal(await digestTree(env.live), volumeBefore);
  });

  it('--step: abort before the swap unwinds (lock released, nothing swapped); skip leaves a step out', async () => {
    const scripted = (answers: StepAnswer[]) => {
      const asked: string[] = [];
      return { asked, prompter: { async ask(step: string) { asked.push(step); return answers.shift() ?? 'continue'; }, close() {} } };
    };
    const host = new LocalHost(path.join(env.root, 'target'), env.restartCmd);
    const base = { host, volume: '/data', dbDir: 'chroma_db', healthUrl: env.url, healthTimeoutMs: 30_000, output: 'json' as const, signal: new AbortController().signal };
    const liveFiles = await listFiles(env.live);
    const a = scripted(['continue', 'continue', 'abort']);
    const aborted = await runRollback({ ...base, prompter: a.prompter });
    assert.equal(aborted.ok, false);
    assert.deepEqual(a.asked, ['preflight', 'stage', 'swap']);
    assert.match(aborted.error!, /aborted at the prompt before swap/);
    assert.deepEqual(aborted.rollback.map((u) => [u.name, u.ok]), [['lock', true]]);
    assert.deepEqual(await listFiles(env.live), liveFiles);
    await assert.rejects(fs.access(path.join(env.volumeOnDisk, '.ferry', 'lock')));

    const b = scripted(['continue', 'continue', 'continue', 'continue', 'skip', 'continue']);
    const done = await runRollback({ ...base, prompter: b.prompter });
    assert.equal(done.ok, true, done.error);
    assert.deepEqual(done.steps.map((st) => st.status), ['done', 'skipped', 'done', 'done', 'skipped', 'done']);
    await waitHeartbeat(env.url, 20_000);
    assert.equal(await servedContentDigest(env.url), before.content);
  });

  it('nothing to roll back to: one line, exit 2', async () => {
    await fs.rm(`${env.live}.old`, { recursive: true });
    const r = await runCli(rollbackArgs());
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /nothing to roll back to: .*chroma_db\.old does not exist/);
  });
});
