/**
 * The restart is bounded and detached, and the preflight refuses what would fail later: real
 * Chroma servers on `local:` and `ssh://` targets.
 *
 * - a --restart-cmd that backgrounds the server without redirecting its output completes;
 * - one that never returns fails after --restart-timeout with one line, and the deploy rolls back;
 *   the undo's restart is bounded too;
 * - SIGINT during the restart ends the run within seconds and unwinds;
 * - a server that does not answer before the deploy is refused unless --allow-server-down;
 * - no --health-url without --no-verify is refused; with it: DEPLOYED, NOT VERIFIED, exit 3.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { execa } from 'execa';
import { listCollectionCounts } from '../lib/chroma/http.ts';
import { chromaCliPath } from '../lib/chroma/server.ts';
import { shQuote } from '../lib/remote/shell.ts';
import { listFiles } from '../testkit/tree-digest.ts';
import { CLI, deployArgs, digestTree, makeDeployEnv, runCli, TEST_STATE_DIR, waitHeartbeat, type DeployEnv } from './helpers/deploy-env.ts';
import { localDeployEnvPerTest } from './helpers/local-deploy-env.ts';
import { startSshd, type TestSshd } from './helpers/sshd.ts';
import { processRuns as alive } from './helpers/proc-scan.ts';

const OLD_SERVED = [['legacy', 40]];
const NEW_SERVED = [['books', 300], ['laws', 150]];
const NOT_DETACHED = /^--restart-cmd did not return within (\d+)s: it must start the server in the background and detach it \(e\.g\. nohup \.\.\. >LOG 2>&1 &, or systemctl restart\)$/;

const sshd = await startSshd();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


/** Waits for `file` to exist (a known point reached by the process under test). */
async function waitForFile(file: string, what: string, timeoutMs = 150_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await fs.stat(file).catch(() => null))) {
    assert.ok(Date.now() < end, `${what} (${file} never appeared)`);
    await sleep(20);
  }
}

/** Stops the env's server and waits until it is gone. */
async function stopServer(env: DeployEnv): Promise<void> {
  const pid = Number(await fs.readFile(env.pidFile, 'utf8'));
  process.kill(pid, 'SIGTERM');
  for (let i = 0; alive(pid); i++) {
    assert.ok(i < 600, 'the server did not stop');
    await sleep(50);
  }
}

/** Replaces the value of `flag` in a deploy's argv (or drops the flag and its value for null). */
function withFlag(args: string[], flag: string, value: string | null): string[] {
  const out = [...args];
  const i = out.indexOf(flag);
  assert.ok(i >= 0, flag);
  if (value === null) out.splice(i, 2);
  else out[i + 1] = value;
  return out;
}

/**
 * A restart that stops the server and starts it again in the background WITHOUT redirecting its
 * output (`chroma run ... &`): it keeps the command's stdout and stderr open as long as it runs.
 */
function nonDetachingRestart(env: DeployEnv): string {
  const q = shQuote;
  return `pid=$(cat ${q(env.pidFile)}); kill "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done; ` +
    `${q(process.execPath)} ${q(chromaCliPath())} run --path ${q(env.live)} --host 127.0.0.1 --port ${env.port} & echo $! > ${q(env.pidFile)}`;
}

/** The first restart runs `hang` (never returns); the later ones (the undo's) restart the server. */
function hangOnceThenRestart(env: DeployEnv, hang: string): { cmd: string; flag: string } {
  const flag = path.join(env.root, 'hang-next-restart');
  return { flag, cmd: `if [ -e ${shQuote(flag)} ]; then rm -f ${shQuote(flag)}; ${hang}; fi; ${env.restartCmd}` };
}

function sshArgs(d: TestSshd): string[] {
  return ['--ssh-key', d.keyFile, ...d.sshOptions.flatMap((o) => ['--ssh-option', o])];
}

interface Target {
  name: string;
  skip: string | false;
  /** --target and --volume of a deploy to env, with the target's own flags. */
  args(env: DeployEnv): { target: string; volume: string; extra: string[] };
}

const TARGETS: Target[] = [
  { name: 'local:', skip: false, args: (env) => ({ target: `local:${path.join(env.root, 'target')}`, volume: '/data', extra: [] }) },
  {
    name: 'ssh://',
    skip: sshd ? false : 'openssh-server is not installed (see the warning above)',
    args: (env) => ({ target: sshd!.target, volume: env.volumeOnDisk, extra: sshArgs(sshd!) }),
  },
];

after(async () => sshd?.stop());

for (const t of TARGETS) {
  describe(`restart (${t.name})`, { skip: t.skip }, () => {
    let env: DeployEnv;
    beforeEach(async () => {
      await env?.stop();
      env = await makeDeployEnv();
    });
    after(async () => env?.stop());

    const served = async () => (await listCollectionCounts(env.url)).map((c) => [c.name, c.count]);
    const args = (extra: string[] = []) => {
      const a = t.args(env);
      return deployArgs(env, a.target, a.volume, [...a.extra, ...extra]);
    };
    const lock = () => path.join(env.volumeOnDisk, '.ferry', 'lock');

    it('a --restart-cmd that backgrounds the server without redirecting its output: the deploy completes', async () => {
      const r = await runCli(withFlag(args(), '--restart-cmd', nonDetachingRestart(env)), { timeoutMs: 150_000 });
      assert.equal(r.code, 0, `${r.stderr}\n${r.stdout}`);
      assert.equal(r.json.verified, true);
      assert.deepEqual(await served(), NEW_SERVED);
      // The server's output went to the restart log on the volume, not through the connection.
      const log = await fs.readFile(path.join(env.volumeOnDisk, '.ferry', `restart-${r.json.runId}.log`), 'utf8');
      assert.match(log, /^== chroma-ferry restart at .*, limit 120s$/m);
      await assert.rejects(fs.access(lock()));
    });

    it('SIGINT while the restart command hangs: the run ends within seconds, unwinds, the command is stopped', async (tc) => {
      const liveFiles = await listFiles(env.live);
      const hangPid = path.join(env.root, 'hang.pid');
      // A child that keeps the command's output open, and a command that waits for it.
      const { cmd, flag } = hangOnceThenRestart(env, `sleep 3600 & echo $! > ${shQuote(hangPid)}; wait`);
      await fs.writeFile(flag, '');
      const child = execa(process.execPath, [CLI, ...withFlag(args(), '--restart-cmd', cmd)], {
        reject: false, stdin: 'ignore', env: { CI: 'true', CHROMA_FERRY_STATE_DIR: TEST_STATE_DIR },
      });
      try {
        await waitForFile(hangPid, 'the deploy reached its restart');
        const pid = Number((await fs.readFile(hangPid, 'utf8')).trim());
        assert.ok(alive(pid));
        const t0 = Date.now();
        child.kill('SIGINT');
        const r = await Promise.race([child, sleep(90_000).then(() => null)]);
        assert.ok(r, 'the CLI did not exit within 90 s of SIGINT');
        const secs = (Date.now() - t0) / 1000;
        tc.diagnostic(`exited ${secs.toFixed(1)} s after SIGINT`);
        assert.equal(r.exitCode, 130, `${String(r.stderr)}\n${String(r.stdout)}`);
        // Unwinding includes the undo's restart of the old data and its check: still far below
        // --restart-timeout (120 s), which is what an unbounded wait would run into.
        assert.ok(secs < 45, `exited ${secs.toFixed(1)} s after SIGINT`);
        const s = JSON.parse(String(r.stdout));
        assert.equal(s.rolledBack, true);
        assert.match(s.error, /interrupted/);
        assert.deepEqual(s.rollback.map((u: { name: string; ok: boolean }) => [u.name, u.ok]), [['swap', true], ['reassemble', true], ['lock', true]]);
        assert.equal(alive(pid), false, 'the hanging restart command is still running on the host');
        await waitHeartbeat(env.url, 20_000);
        assert.deepEqual(await served(), OLD_SERVED);
        assert.deepEqual(await listFiles(env.live), liveFiles);
        await assert.rejects(fs.access(lock()), 'lock released');
      } finally {
        child.kill('SIGKILL');
        const pid = Number((await fs.readFile(hangPid, 'utf8').catch(() => '')).trim());
        if (pid && alive(pid)) process.kill(pid, 'SIGKILL');
      }
    });
  });
}

describe('restart and preflight (local:)', () => {
  const local = localDeployEnvPerTest();
  const served = local.served;
  const lock = () => path.join(local.env.volumeOnDisk, '.ferry', 'lock');

  it('a --restart-cmd that never returns fails after --restart-timeout with one line; rolled back, lock released', async () => {
    const { env, target } = local;
    const liveFiles = await listFiles(env.live);
    const hangPid = path.join(env.root, 'hang.pid');
    const { cmd, flag } = hangOnceThenRestart(env, `echo about to hang; echo $$ > ${shQuote(hangPid)}; exec sleep 3600`);
    await fs.writeFile(flag, '');
    const t0 = Date.now();
    const r = await runCli(withFlag(deployArgs(env, target, '/data', ['--restart-timeout', '3s']), '--restart-cmd', cmd), { timeoutMs: 150_000 });
    assert.equal(r.code, 1, `${r.stderr}\n${r.stdout}`);
    const s = r.json;
    assert.match(s.error, NOT_DETACHED);
    assert.equal(NOT_DETACHED.exec(s.error)![1], '3');
    assert.equal(s.steps.find((x: { name: string }) => x.name === 'restart').status, 'failed');
    assert.ok(s.restartLog.tail.includes('about to hang'), JSON.stringify(s.restartLog));
    assert.equal(s.rolledBack, true);
    assert.deepEqual(s.rollback.map((u: { name: string; ok: boolean }) => [u.name, u.ok]), [['swap', true], ['reassemble', true], ['lock', true]]);
    assert.ok(Date.now() - t0 < 120_000);
    const pid = Number((await fs.readFile(hangPid, 'utf8')).trim());
    assert.equal(alive(pid), false, 'the command was stopped at its time limit');
    await waitHeartbeat(env.url, 20_000);
    assert.deepEqual(await served(), OLD_SERVED);
    assert.deepEqual(await listFiles(env.live), liveFiles);
    await assert.rejects(fs.access(lock()));

    // The plain summary: the one line, then the end of the restart log.
    await fs.writeFile(flag, '');
    const plain = await runCli(withFlag(deployArgs(env, target, '/data', ['--restart-timeout', '2s']), '--restart-cmd', cmd).filter((a) => a !== '--json'));
    assert.equal(plain.code, 1, plain.stderr);
    const lines = plain.stdout.split('\n');
    const at = lines.findIndex((l) => l.startsWith('  error: '));
    assert.match(lines[at]!.slice('  error: '.length), NOT_DETACHED);
    assert.match(lines[at + 1]!, /^ {2}restart log \(last \d+ lines of .*\/\.ferry\/restart-[0-9a-f]+\.log\):$/);
    assert.ok(lines.includes('    | about to hang'), plain.stdout);
  });

  it('the undo\'s restart is bounded too: a command that never returns at all ends the run after two time limits', async () => {
    const { env, target } = local;
    const liveFiles = await listFiles(env.live);
    const t0 = Date.now();
    const r = await runCli(withFlag(deployArgs(env, target, '/data', ['--restart-timeout', '2s']), '--restart-cmd', 'exec sleep 3600'), { timeoutMs: 150_000 });
    const secs = (Date.now() - t0) / 1000;
    assert.equal(r.code, 1, `${r.stderr}\n${r.stdout}`);
    assert.match(r.json.error, NOT_DETACHED);
    const swapUndo = r.json.rollback.find((u: { name: string }) => u.name === 'swap');
    assert.equal(swapUndo.ok, false);
    assert.match(swapUndo.error, NOT_DETACHED, 'the undo says what its restart did');
    assert.equal(r.json.rollback.find((u: { name: string }) => u.name === 'lock').ok, true);
    // The old data is back in the live dir (the renames are undone before the restart).
    assert.deepEqual(await listFiles(env.live), liveFiles);
    await assert.rejects(fs.access(lock()));
    assert.ok(secs < 100, `${secs} s`);
  });

  it('the server at --health-url does not answer before the deploy: refused, nothing changed; allowed with --allow-server-down', async () => {
    const { env, target } = local;
    await stopServer(env);
    const volumeBefore = await digestTree(env.volumeOnDisk);
    const r = await runCli(deployArgs(env, target, '/data'));
    assert.equal(r.code, 2, `${r.stderr}\n${r.stdout}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^chroma-ferry: the server at http:\/\/127\.0\.0\.1:\d+ does not answer before the deploy \(.*\): start it or fix --health-url, or pass --allow-server-down to deploy anyway$/);
    assert.equal(await digestTree(env.volumeOnDisk), volumeBefore, 'the refused deploy changed the volume');

    const ok = await runCli(deployArgs(env, target, '/data', ['--allow-server-down']));
    assert.equal(ok.code, 0, `${ok.stderr}\n${ok.stdout}`);
    assert.equal(ok.json.verified, true);
    assert.ok(ok.json.warnings.some((w: string) => /did not answer before the deploy/.test(w)));
    assert.deepEqual(await served(), NEW_SERVED);
  });

  it('no --health-url: refused without --no-verify; with it DEPLOYED, NOT VERIFIED and exit 3', async () => {
    const { env, target } = local;
    const volumeBefore = await digestTree(env.volumeOnDisk);
    const noUrl = withFlag(deployArgs(env, target, '/data'), '--health-url', null);
    const refused = await runCli(noUrl);
    assert.equal(refused.code, 2, refused.stderr + refused.stdout);
    assert.equal(refused.stderr, 'chroma-ferry: no --health-url: a deploy must be verified; give --health-url URL (a Chroma server) or --app-health-url URL (an app that embeds Chroma), or --no-verify to deploy unverified');
    const bare = await runCli(withFlag(noUrl, '--restart-cmd', null));
    assert.equal(bare.code, 2, 'without --restart-cmd either');
    const both = await runCli([...deployArgs(env, target, '/data'), '--no-verify']);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /^chroma-ferry: --no-verify and --health-url do not go together/);
    assert.equal(await digestTree(env.volumeOnDisk), volumeBefore, 'a refused deploy changed the volume');

    const r = await runCli([...noUrl.filter((a) => a !== '--json'), '--no-verify']);
    assert.equal(r.code, 3, `${r.stderr}\n${r.stdout}`);
    const head = r.stdout.split('\n').find((l) => /^(DEPLOYED|FAILED)/.test(l));
    assert.match(head ?? r.stdout, /^DEPLOYED, NOT VERIFIED {2}/);
    assert.match(r.stdout, /verify +skipped .*--no-verify/);
    assert.match(r.stdout, /verified: no/);
    assert.deepEqual(await listFiles(env.live), await listFiles(env.source));
    await waitHeartbeat(env.url, 30_000);
    assert.deepEqual(await served(), NEW_SERVED, 'deployed and restarted, only not checked');
  });
});
