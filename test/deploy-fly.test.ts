/**
 * Deploys to `fly:APP` through a strict fake `fly` (test/fixtures/fake-fly/fly, its contract in
 * test/fixtures/fake-fly/README.md) whose "machine" is this one: the volume is a local dir, the restart
 * is the real-Chroma restart command, `fly proxy` forwards to the real server.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { servedContentDigest } from '../testkit/content-digest.ts';
import { listCollectionCounts } from '../lib/chroma/http.ts';
import { chooseTarget, readFlyToml } from '../lib/hosts/fly-config.ts';
import { compareVersions, parseFlyVersion, splitStatusMarker, withStatusMarker } from '../lib/hosts/fly.ts';
import { remoteScript, renderShCommand, shArgv, shQuote } from '../lib/remote/shell.ts';
import { assertInterruptedUploadResumes, assertTruncatedUploadCaught } from './helpers/interrupted-upload.ts';
import { APP, FAKE, MACHINE, TOKEN, makeFakeFly, type FakeFly } from './helpers/fake-fly.ts';
import { CLI, contentDigestOfDir, digestTree, makeDeployEnv, runCli, TEST_STATE_DIR, waitHeartbeat, type CliResult, type DeployEnv } from './helpers/deploy-env.ts';

function flyArgs(env: DeployEnv, extra: string[] = []): string[] {
  return ['deploy', '--source', env.source, '--target', `fly:${APP}`, '--volume', env.volumeOnDisk, '--health-timeout', '30s', '--yes', '--json', ...extra];
}

function assertNoToken(r: CliResult | { stdout: string; stderr: string }): void {
  assert.ok(!r.stdout.includes(TOKEN) && !r.stderr.includes(TOKEN), 'the Fly token was printed');
}

/** Every call the CLI made obeys the contract (the fake enforces the rest). */
function assertContractCalls(calls: string[][]): void {
  for (const c of calls) {
    assert.ok(!c.includes('--pty') && !c.includes('-t') && !c.includes('-s'), `forbidden flag in ${JSON.stringify(c)}`);
    assert.ok(!c.some((w) => w.includes(TOKEN)), 'token on a command line');
    if (c[0] === 'ssh') {
      assert.equal(c[c.indexOf('--machine') + 1], MACHINE, JSON.stringify(c));
      assert.ok(c.includes('-q'));
      assert.match(c[c.indexOf('-C') + 1]!, /^sh -c '/);
    }
  }
}

const procGone = async (pid: number) => {
  for (let i = 0; i < 50; i++) {
    try { process.kill(pid, 0); } catch { return true; }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
};

describe('deploy to fly:', () => {
  describe('full deploys', () => {
    let env: DeployEnv;
    let fly: FakeFly;
    before(async () => {
      env = await makeDeployEnv();
      fly = await makeFakeFly(env);
    });
    after(async () => { await env?.stop(); await fs.rm(fly.dir, { recursive: true, force: true }); });

    it('--upload sftp: machine restart, health through fly proxy, served content equals the source', async () => {
      const sourceDigest = await digestTree(env.source);
      const sourceContent = await contentDigestOfDir(env.source);
      const r = await runCli(flyArgs(env, ['--upload', 'sftp']), { env: fly.env });
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.equal(r.json.verified, true);
      assert.equal(r.json.target, `fly:${APP}`);
      assert.equal(r.json.upload.method, 'sftp');
      assert.equal(r.json.upload.chunksSent, r.json.archive.chunks);
      assert.deepEqual((await listCollectionCounts(env.url)).map((c) => [c.name, c.count]), [['books', 300], ['laws', 150]]);
      assert.equal(await servedContentDigest(env.url), sourceContent);
      assert.equal(await digestTree(env.source), sourceDigest);
      assertNoToken(r);
      const calls = await fly.calls();
      assertContractCalls(calls);
      const verbs = calls.map((c) => c.slice(0, 2).join(' '));
      for (const v of ['version', 'auth whoami', 'machines list', 'ssh console', 'sftp put', 'machine restart', 'machine wait', 'proxy 0:8000']) {
        assert.ok(verbs.includes(v), `no fly ${v} call`);
      }
      assert.ok(!calls.some((c) => c[0] === 'volumes'), 'no snapshot without --snapshot');
      const proxyPid = Number(await fs.readFile(path.join(fly.dir, 'proxy.pid'), 'utf8'));
      assert.ok(await procGone(proxyPid), 'fly proxy still running after the deploy');
    });

    it('--upload stream with --snapshot: chunks through ssh stdin, the snapshot is in the summary', async () => {
      const before = (await fly.calls()).length;
      const r = await runCli(flyArgs(env, ['--upload', 'stream', '--snapshot']), { env: fly.env });
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.equal(r.json.verified, true);
      assert.equal(r.json.upload.method, 'stream');
      assert.match(r.json.snapshotId, /^vs_/);
      const snaps = (await fly.state()).snapshots.vol_ferrytest01;
      assert.deepEqual(snaps.map((s: { id: string; status: string }) => [s.id, s.status]), [[r.json.snapshotId, 'created']]);
      const calls = (await fly.calls()).slice(before);
      assertContractCalls(calls);
      assert.ok(!calls.some((c) => c[0] === 'sftp'), 'stream upload used sftp');
      assert.ok(calls.some((c) => c.join(' ') === 'volumes snapshots create vol_ferrytest01'));
      assertNoToken(r);
      assert.deepEqual((await listCollectionCounts(env.url)).map((c) => [c.name, c.count]), [['books', 300], ['laws', 150]]);
    });

    it('the human summary names the snapshot as a second restore point', async () => {
      const args = flyArgs(env, ['--snapshot']).filter((a) => a !== '--json');
      const r = await runCli(args, { env: fly.env });
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.match(r.stdout, /snapshot: vs_\S+ \(volume snapshot, a second restore point/);
      assertNoToken(r);
    });
  });

  describe('upload faults and rollback', () => {
    let env: DeployEnv;
    let fly: FakeFly;
    const big = [{ name: 'vectors', count: 3000, dim: 768, space: 'l2' as const }];
    before(async () => {
      env = await makeDeployEnv({ source: big });
      fly = await makeFakeFly(env);
    });
    after(async () => { await env?.stop(); await fs.rm(fly.dir, { recursive: true, force: true }); });

    it('a chunk truncated by fly sftp put is caught before the swap; live data untouched', async () => {
      const bin = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-flybin-'));
      const counter = path.join(bin, 'count');
      await fs.writeFile(path.join(bin, 'fly'), `#!/bin/sh
${shQuote(FAKE)} "$@" || exit $?
if [ "$1 $2" = "sftp put" ]; then
  n=$(cat ${shQuote(counter)} 2>/dev/null || echo 0); n=$((n+1)); echo "$n" > ${shQuote(counter)}
  for last; do :; done
  if [ "$n" = 2 ]; then truncate -s -1 "$last"; fi
fi
`, { mode: 0o755 });
      const liveDigest = await digestTree(env.live);
      const r = await runCli(flyArgs(env, ['--chunk-size', '1MiB', '--upload-concurrency', '1']), { env: { ...fly.env, PATH: `${bin}:${fly.env.PATH}` } });
      await assertTruncatedUploadCaught(env, r, liveDigest);
      assertNoToken(r);
      await fs.rm(bin, { recursive: true, force: true });
    });

    it('an interrupted upload resumes: verified chunks are not sent again', async () => {
      await assertInterruptedUploadResumes(env, flyArgs(env, ['--chunk-size', '1MiB', '--upload-concurrency', '1']), fly.env);
    });

    it('a server that does not come back after the machine restart: auto-rollback, old data serving again', async () => {
      const contentBefore = await servedContentDigest(env.url);
      const servedBefore = (await listCollectionCounts(env.url)).map((c) => [c.name, c.count]);
      const flag = path.join(env.root, 'fail-next-restart');
      await fs.writeFile(flag, '');
      await fly.patch((s) => {
        s.restartHook = `if [ -e ${shQuote(flag)} ]; then rm -f ${shQuote(flag)}; kill "$(cat ${shQuote(env.pidFile)})"; exit 0; fi; ${env.restartCmd}`;
      });
      // A different source so that the deploy would change what is served.
      const other = path.join(env.root, 'other source');
      const { sampleDbCopy, SOURCE_SPEC } = await import('./helpers/deploy-env.ts');
      await sampleDbCopy(other, SOURCE_SPEC, 11);
      const args = flyArgs(env, ['--health-timeout', '4s']);
      args[args.indexOf('--source') + 1] = other;
      const r = await runCli(args, { env: fly.env });
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.json.rolledBack, true);
      assert.match(r.json.error, /heartbeat|answer/i);
      assert.deepEqual(r.json.rollback.map((u: { name: string; ok: boolean }) => [u.name, u.ok]), [['swap', true], ['reassemble', true], ['lock', true]]);
      await waitHeartbeat(env.url, 20_000);
      assert.deepEqual((await listCollectionCounts(env.url)).map((c) => [c.name, c.count]), servedBefore);
      assert.equal(await servedContentDigest(env.url), contentBefore);
      assert.equal((await fly.calls()).filter((c) => c[0] === 'machine' && c[1] === 'restart').length >= 2, true);
      assertNoToken(r);
    });
  });

  describe('refused before anything changes: one line, exit 2, volume unchanged', () => {
    let env: DeployEnv;
    let fly: FakeFly;
    before(async () => {
      env = await makeDeployEnv();
      fly = await makeFakeFly(env);
    });
    after(async () => { await env?.stop(); await fs.rm(fly.dir, { recursive: true, force: true }); });

    const refused = async (args: string[], extraEnv: Record<string, string>, re: RegExp) => {
      const before = await digestTree(env.volumeOnDisk);
      const r = await runCli(args, { env: { ...fly.env, ...extraEnv } });
      assert.equal(r.code, 2, r.stderr + r.stdout);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, re);
      assertNoToken(r);
      assert.equal(await digestTree(env.volumeOnDisk), before, 'the volume changed');
      return r;
    };

    it('an invalid app name', async () => {
      const args = flyArgs(env);
      args[args.indexOf('--target') + 1] = 'fly:My_App';
      await refused(args, {}, /Fly app name "My_App" is not valid \(lowercase letters, digits and dashes only\)/);
    });

    it('no token', async () => {
      await refused(flyArgs(env), { FLY_ACCESS_TOKEN: '', FLY_API_TOKEN: '' }, /no Fly\.io token: set FLY_ACCESS_TOKEN or FLY_API_TOKEN/);
    });

    it('a token that fly auth whoami rejects', async () => {
      await refused(flyArgs(env), { FLY_ACCESS_TOKEN: `${TOKEN}-wrong` }, /fly auth whoami failed: .*authenticated/);
    });

    it('flyctl older than 0.4.80', async () => {
      await fly.patch((s) => { s.version = '0.4.70'; });
      try {
        await refused(flyArgs(env), {}, /flyctl 0\.4\.70 is too old: chroma-ferry needs 0\.4\.80 or newer/);
      } finally {
        await fly.patch((s) => { s.version = '0.4.87'; });
      }
    });

    it('--restart-cmd with fly:', async () => {
      await refused(flyArgs(env, ['--restart-cmd', 'true']), {}, /--restart-cmd does not apply to fly: targets/);
    });

    it('several started machines without --machine are listed', async () => {
      await fly.patch((s) => {
        s.machines.push({ id: '9080e6f3a12345', name: 'chroma-2', state: 'started', region: 'fra', private_ip: 'fdaa:0:1::3', checks: [] });
      });
      try {
        await refused(flyArgs(env), {}, new RegExp(`has 2 started machines: ${MACHINE} \\(started, ams\\), 9080e6f3a12345 \\(started, fra\\); pass --machine ID`));
        // With --machine it goes through (and the fake would refuse an ssh console without it).
        const r = await runCli(flyArgs(env, ['--machine', MACHINE]), { env: fly.env });
        assert.equal(r.code, 0, r.stderr + r.stdout);
        assertContractCalls(await fly.calls());
      } finally {
        await fly.patch((s) => { s.machines = s.machines.slice(0, 1); });
      }
    });
  });

  describe('the fake fly rejects what flyctl rejects or runs differently', () => {
    let dir: string;
    let env: Record<string, string>;
    before(async () => {
      dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-fakefly-unit-'));
      await fs.writeFile(path.join(dir, 'state.json'), JSON.stringify({
        app: APP, version: '0.4.87', authOk: true, chromaPort: 1,
        machines: [{ id: MACHINE, state: 'started', region: 'ams', private_ip: 'x', checks: [] }, { id: 'aaaa1111bbbb22', state: 'started', region: 'ams', private_ip: 'y', checks: [] }],
        volumes: [],
      }));
      env = { FAKE_FLY_STATE: dir, FLY_ACCESS_TOKEN: TOKEN };
    });
    after(async () => fs.rm(dir, { recursive: true, force: true }));
    const fake = (args: string[], input?: string) => execa(FAKE, args, { reject: false, env, input });
    const ssh = (...extra: string[]) => ['ssh', 'console', '-a', APP, '--machine', MACHINE, '-q', ...extra];

    it('runs a wrapped command with stdin piped and reports a failing status like flyctl', async () => {
      const ok = await fake(ssh('-C', renderShCommand(remoteScript('t', 'cat; printf "%s" "$1"', ["it's $(x)"]))), 'in\n');
      assert.equal(ok.exitCode, 0, ok.stderr);
      assert.equal(ok.stdout, "in\nit's $(x)");
      const bad = await fake(ssh('-C', "sh -c 'exit 3'"));
      assert.equal(bad.exitCode, 1);
      assert.match(bad.stderr, /^Error: ssh shell: Process exited with status 3$/m);
    });

    for (const [name, args, re] of [
      ['--pty', ssh('--pty', '-C', "sh -c 'true'"), /unsupported flag --pty/],
      ['-t used as a pty flag', ssh('-t', '-C', "sh -c 'true'"), /unsupported -t: it is --access-token/],
      ['-s/--select', ['ssh', 'console', '-a', APP, '-s', '-C', "sh -c 'true'"], /unsupported flag -s/],
      ['unwrapped &&', ssh('-C', 'echo a && echo b'), /unsupported -C command with shell syntax "&"/],
      ['unwrapped pipe', ssh('-C', 'cat f | wc -c'), /shell syntax "\|"/],
      ['unwrapped ;', ssh('-C', 'true; true'), /shell syntax ";"/],
      ['unwrapped redirection', ssh('-C', 'echo x > /tmp/y'), /shell syntax ">"/],
      ['a bare shell (flyctl allocates a pty)', ssh('-C', 'sh'), /allocates a pseudo-terminal/],
      ['no --machine with several machines', ['ssh', 'console', '-a', APP, '-q', '-C', "sh -c 'true'"], /without --machine when the app has several machines/],
      ['an unknown flag', ssh('--frobnicate', '-C', "sh -c 'true'"), /unsupported flag --frobnicate/],
      ['an unknown command', ['apps', 'restart', APP], /unsupported command/],
    ] as const) {
      it(`rejects ${name}`, async () => {
        const r = await fake([...args]);
        assert.notEqual(r.exitCode, 0);
        assert.match(r.stderr, /fake fly: unsupported/);
        assert.match(r.stderr, re);
      });
    }

    it('sftp put refuses to overwrite, and every command needs a token', async () => {
      const src = path.join(dir, 'src');
      const dst = path.join(dir, 'dst');
      await fs.writeFile(src, 'x');
      const put = ['sftp', 'put', '-a', APP, '--machine', MACHINE, src, dst];
      assert.equal((await fake(put)).exitCode, 0);
      const again = await fake(put);
      assert.equal(again.exitCode, 1);
      assert.match(again.stderr, /already exists/);
      const noToken = await execa(FAKE, ['machines', 'list', '-a', APP, '--json'], { reject: false, env: { FAKE_FLY_STATE: dir, FLY_ACCESS_TOKEN: '', FLY_API_TOKEN: '' } });
      assert.equal(noToken.exitCode, 1);
      assert.match(noToken.stderr, /no access token/);
    });
  });

  describe('units', () => {
    it('the status marker: exit status, stdout without the marker, stdin and arguments intact', async () => {
      for (const [code, status] of [['printf "a\\nb"; exit 0', 0], ['echo out; exit 5', 5], ['set -e; false; echo never', 1], ['cat; echo "$1|$2"', 0]] as const) {
        const r = await execa(shArgv(withStatusMarker(remoteScript('t', code, ["x'y", 'z z']))).at(0)!, shArgv(withStatusMarker(remoteScript('t', code, ["x'y", 'z z']))).slice(1), { input: 'IN\n', reject: false, stripFinalNewline: false });
        const parsed = splitStatusMarker(String(r.stdout));
        assert.ok(parsed, `no marker in ${r.stdout}`);
        assert.equal(parsed.status, status);
        if (code.startsWith('printf')) assert.equal(parsed.stdout, 'a\nb');
        if (code.startsWith('cat')) assert.equal(parsed.stdout, "IN\nx'y|z z\n");
      }
      assert.equal(splitStatusMarker('cut off in the midd'), undefined);
    });

    it('flyctl versions', () => {
      assert.equal(parseFlyVersion('fly v0.4.87 linux/amd64 Commit: abc BuildDate: 2025-01-01'), '0.4.87');
      assert.ok(compareVersions('0.4.79', '0.4.80') < 0 && compareVersions('0.10.0', '0.4.80') > 0 && compareVersions('0.4.80', '0.4.80') === 0);
    });

    it('fly.toml defaults: app -> --target, [mounts] -> --volume unless given, flags win', async () => {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-flytoml-'));
      const file = path.join(dir, 'fly.toml');
      await fs.writeFile(file, 'app = "my-chroma"\n[mounts]\n  source = "d"\n  destination = "/vol"\n[http_service]\n  internal_port = 8001\n');
      const src = (explicit: boolean) => ({ getOptionValueSource: (k: string) => (k === 'volume' && explicit ? 'cli' : 'default') }) as never;
      assert.deepEqual(readFlyToml(file), { file, app: 'my-chroma', volume: '/vol', internalPort: 8001 });
      assert.deepEqual(chooseTarget({ volume: '/data', config: file }, src(false)), { target: 'fly:my-chroma', targetSource: file, volume: '/vol', machine: undefined, internalPort: 8001 });
      assert.deepEqual(chooseTarget({ volume: '/data', config: file }, src(true)), { target: 'fly:my-chroma', targetSource: file, volume: '/data', machine: undefined, internalPort: 8001 });
      assert.equal(chooseTarget({ target: 'fly:my-chroma', volume: '/data', config: file }, src(false)).targetSource, undefined, 'a --target given is not from the file');
      assert.equal(chooseTarget({ target: 'fly:other', volume: '/data', config: file, machine: 'abc123' }, src(false)).target, 'fly:other');
      assert.throws(() => chooseTarget({ target: 'local:/x', volume: '/data', machine: 'abc' }, src(false)), /--machine applies to fly: targets only/);
      assert.throws(() => chooseTarget({ target: 'fly:x', volume: '/data', machine: '--evil' }, src(false)), /not a Fly machine id/);
      await fs.writeFile(file, 'app = "Bad_Name"\n');
      assert.throws(() => readFlyToml(file), /Fly app name "Bad_Name" is not valid/);
      assert.throws(() => readFlyToml(path.join(dir, 'missing.toml')), /--config .*cannot read/);
      await fs.rm(dir, { recursive: true, force: true });
    });

    it('the CLI takes --target and --volume from --config FILE', async () => {
      // Bad source so that nothing runs past argument parsing; the message shows the chosen target.
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-flytoml-'));
      await fs.writeFile(path.join(dir, 'fly.toml'), 'app = "from-toml"\n[mounts]\n  destination = "/vol"\n');
      const src = path.join(dir, 'src');
      await fs.mkdir(src);
      await fs.writeFile(path.join(src, 'chroma.sqlite3'), '');
      const r = await execa(process.execPath, [CLI, 'deploy', '--source', src, '--config', path.join(dir, 'fly.toml')], { reject: false, env: { CI: 'true', CHROMA_FERRY_STATE_DIR: TEST_STATE_DIR }, stdin: 'ignore' });
      assert.equal(r.exitCode, 2);
      assert.match(String(r.stderr), /replace \/vol\/chroma_db on fly:from-toml from \S+fly\.toml with/);
      await fs.rm(dir, { recursive: true, force: true });
    });
  });
});
