/**
 * Preflight proves that the dir a deploy replaces is the dir being served: a process on the remote
 * holds VOLUME/NAME/chroma.sqlite3 open (lib/volume/served-dir-check.ts). Real Chroma servers
 * started as the stock image starts them (test/helpers/stock-image.ts), over a real sshd chrooted
 * into the `stock` Debian root (the image's userland: the probe uses only coreutils and findutils):
 * the server runs on this machine, the volume is inside the root, and the root's /proc is this
 * machine's, so the inode the server holds is the inode the probe finds.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { listCollectionCounts } from '../lib/chroma/http.ts';
import { debianRoot, mountsUnder, type DebianRoot, type RootVolume } from './helpers/debian-root.ts';
import { digestTree, makeDeployEnv, OLD_SPEC, runCli, sampleDbCopy, SOURCE_SPEC, type CliResult } from './helpers/deploy-env.ts';
import { startRestartRelay, type RestartRelay } from './helpers/restart-relay.ts';
import { chrootedFarSide } from './helpers/far-side.ts';
import { startSshd, type TestSshd } from './helpers/sshd.ts';
import { OLD_FLY_ENV, readFlyApp, startAsImage, type ImageServer } from './helpers/stock-image.ts';

const counts = async (url: string) => (await listCollectionCounts(url)).map((c) => [c.name, c.count]);
const exists = (p: string) => fs.access(p).then(() => true, () => false);

/** The refusal: exit 2, one line on stderr, no summary (nothing ran past preflight). */
function assertRefused(r: CliResult): string {
  assert.equal(r.code, 2, r.stderr + r.stdout);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  return lines[0]!;
}

describe('preflight: the dir to be replaced is the dir being served (stock Debian root, chrooted sshd)', () => {
  const far = chrootedFarSide('stock');
  const ready = (t: TestContext): boolean => far.ready(t);
  let tmp: string;
  before(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-served-dir-'));
  });
  after(async () => {
    await fs.rm(tmp, { recursive: true, force: true });
  });

  /** A server started as the image starts it (the repo's fly.toml [env] unless `env`), its /data the volume inside the root. */
  async function scene(name: string, o: { env?: Record<string, string>; seedLive: boolean }) {
    const vol: RootVolume = await far.root!.makeVolume();
    if (o.seedLive) await sampleDbCopy(path.join(vol.onDisk, 'chroma_db'), OLD_SPEC, 3);
    const dir = path.join(tmp, name);
    await fs.mkdir(dir);
    const server: ImageServer = await startAsImage({ dir, volumeOnDisk: vol.onDisk, env: o.env });
    const source = path.join(dir, 'source');
    await sampleDbCopy(source, SOURCE_SPEC, 11);
    const d = far.sshd!;
    const target = ['--target', d.target, '--volume', vol.inside, '--ssh-key', d.keyFile, ...d.sshOptions.flatMap((x) => ['--ssh-option', x])];
    return {
      vol, server, source, target,
      async dispose() {
        await server.stop();
        await vol.remove();
      },
    };
  }

  it("(a) the repo's fly.toml [env] on the stock image: the server holds VOLUME/chroma_db/chroma.sqlite3, the check passes, the deploy verifies", async (t) => {
    if (!ready(t)) return;
    assert.ok((await readFlyApp()).env.CHROMA_PERSIST_PATH, 'the repo fly.toml sets CHROMA_PERSIST_PATH');
    const s = await scene('a', { seedLive: true });
    let relay: RestartRelay | undefined;
    try {
      assert.deepEqual(await counts(s.server.url), [['legacy', 40]], 'it serves the seeded VOLUME/chroma_db');
      relay = await startRestartRelay(far.root!, s.server.restartCmd);
      const pid = await s.server.pid();
      const r = await runCli(['deploy', '--source', s.source, ...s.target, '--restart-cmd', relay.insideCmd,
        '--health-url', s.server.url, '--health-timeout', '30s', '--yes', '--json']);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.equal(r.json?.verified, true);
      assert.deepEqual(r.json?.servedDir, { check: 'passed', file: `${s.vol.inside}/chroma_db/chroma.sqlite3`, pids: [pid] },
        'found through the root\'s /proc: the server on this machine, by the inode of the file inside the root');
      assert.deepEqual(await counts(s.server.url), [['books', 300], ['laws', 150]]);
    } finally {
      await relay?.stop();
      await s.dispose();
    }
  });

  it('(b) the stock image serving the volume ROOT (no CHROMA_PERSIST_PATH): refused before any change, with how to move the data into a subdirectory', async (t) => {
    if (!ready(t)) return;
    for (const seedLive of [true, false]) {
      const s = await scene(`b-${seedLive}`, { env: OLD_FLY_ENV, seedLive });
      try {
        assert.ok(await exists(path.join(s.vol.onDisk, 'chroma.sqlite3')), 'it serves the volume root');
        const before = await digestTree(s.vol.onDisk);
        const r = await runCli(['deploy', '--source', s.source, ...s.target, '--restart-cmd', 'exit 1',
          '--health-url', s.server.url, '--health-timeout', '30s', '--yes', '--json']);
        const line = assertRefused(r);
        const v = s.vol.inside;
        assert.ok(line.includes(`the server serves the volume root (${v}/chroma.sqlite3 is open), not ${v}/chroma_db, the dir this deploy replaces`), line);
        assert.ok(line.includes('a server serving the volume root cannot be swapped by renames; nothing was changed'), line);
        assert.ok(line.includes(`stop the server, ${seedLive ? `move the unserved ${v}/chroma_db aside, ` : ''}mkdir ${v}/chroma_db, move ${v}/chroma.sqlite3 and the collection dirs`), line);
        assert.ok(line.includes(`set CHROMA_PERSIST_PATH=${v}/chroma_db in fly.toml's [env] (or the server's config), start the server`), line);
        assert.equal(await digestTree(s.vol.onDisk), before, 'the volume is byte-identical');
        assert.ok(!(await exists(path.join(s.vol.onDisk, '.ferry'))), 'no lock, no upload, no state: nothing written');
        assert.ok(!(await exists(path.join(s.vol.onDisk, 'chroma_db', '.ferry-data-id'))));
        assert.deepEqual(await counts(s.server.url), [], 'the server still serves what it served');
      } finally {
        await s.dispose();
      }
    }
  });

  it('(c) a server serving another dir of the volume: refused, naming the served path, the deployed path and the fix', async (t) => {
    if (!ready(t)) return;
    const s = await scene('c', { env: { ...(await readFlyApp()).env, CHROMA_PERSIST_PATH: '/data/other_db' }, seedLive: true });
    try {
      assert.ok(await exists(path.join(s.vol.onDisk, 'other_db', 'chroma.sqlite3')));
      const before = await digestTree(s.vol.onDisk);
      const r = await runCli(['deploy', '--source', s.source, ...s.target, '--restart-cmd', 'exit 1',
        '--health-url', s.server.url, '--health-timeout', '30s', '--yes', '--json']);
      const line = assertRefused(r);
      const v = s.vol.inside;
      // Other chroma.sqlite3 files open on this machine (other tests' servers) may follow as "also open".
      assert.ok(line.startsWith(`chroma-ferry: no process on ${far.sshd!.target} holds ${v}/chroma_db/chroma.sqlite3 open, so the server does not serve ${v}/chroma_db, the dir this deploy replaces: the server serves ${v}/other_db/chroma.sqlite3`), line);
      assert.ok(line.includes(`set CHROMA_PERSIST_PATH=${v}/chroma_db in fly.toml's [env] (or the server's config) and restart it; or deploy to the dir it serves with --volume and --db-dir (--db-dir other_db)`), line);
      assert.equal(await digestTree(s.vol.onDisk), before, 'the volume is byte-identical');
      assert.ok(!(await exists(path.join(s.vol.onDisk, '.ferry'))));
    } finally {
      await s.dispose();
    }
  });
});

describe('preflight: where /proc cannot be read the check is skipped, saying why', () => {
  let root: DebianRoot | null = null;
  let sshd: TestSshd | null = null;
  before(async () => {
    root = await debianRoot('stock');
    if (!root) return;
    // No /proc inside the root for this test (one left mounted by a killed run is unmounted here).
    await (await root.mountProc())();
    sshd = await startSshd({ chrootDirectory: root.path });
  });
  after(async () => { await sshd?.stop(); });

  it('(d) no /proc in the chroot: a warning and servedDir.check "skipped" with the reason; the deploy goes on and verifies', async (t) => {
    if (!root || !sshd) return t.skip('no Debian root or no sshd on this machine (see the warning above)');
    assert.deepEqual(mountsUnder(path.join(root.path, 'proc')), [], '/proc is not mounted inside the root');
    const vol = await root.makeVolume();
    let relay: RestartRelay | undefined;
    const env = await makeDeployEnv({ volumeOnDisk: () => vol.onDisk });
    try {
      relay = await startRestartRelay(root, env.restartCmd);
      const r = await runCli(['deploy', '--source', env.source, '--target', sshd.target, '--volume', vol.inside, '--ssh-key', sshd.keyFile,
        ...sshd.sshOptions.flatMap((x) => ['--ssh-option', x]), '--restart-cmd', relay.insideCmd, '--health-url', env.url, '--health-timeout', '30s', '--yes', '--json']);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const why = '/proc is not mounted on the remote (no /proc/self/fd)';
      assert.deepEqual(r.json?.servedDir, { check: 'skipped', file: `${vol.inside}/chroma_db/chroma.sqlite3`, why: `cannot tell which dir the server serves: ${why}` });
      assert.ok(r.json?.warnings.includes(`the check that the server serves ${vol.inside}/chroma_db was skipped: ${why}`), JSON.stringify(r.json?.warnings));
    } finally {
      await relay?.stop();
      await env.stop();
      await vol.remove();
    }
  });
});

/** Stop the env's server and wait for it to be gone (polling its /proc entry; up to 15 s). */
async function stopServer(pidFile: string): Promise<void> {
  const pid = Number(await fs.readFile(pidFile, 'utf8'));
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 150 && (await exists(`/proc/${pid}`)); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(!(await exists(`/proc/${pid}`)), `the server (pid ${pid}) stopped`);
}

describe('preflight on a local: target (this machine\'s /proc)', () => {
  it('a server that is down (--allow-server-down): skipped because nothing holds the file then, not refused', async () => {
    const env = await makeDeployEnv();
    try {
      await stopServer(env.pidFile);
      const r = await runCli(['deploy', '--source', env.source, '--target', `local:${env.root}/target`, '--volume', '/data',
        '--restart-cmd', env.restartCmd, '--health-url', env.url, '--health-timeout', '30s', '--allow-server-down', '--yes', '--json']);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const why = `the server is down (--allow-server-down): nothing holds ${env.live}/chroma.sqlite3 open`;
      assert.deepEqual(r.json?.servedDir, { check: 'skipped', file: `${env.live}/chroma.sqlite3`, why });
      assert.ok(r.json?.warnings.includes(`the check that the server serves ${env.live} was skipped: ${why}`), JSON.stringify(r.json?.warnings));
    } finally {
      await env.stop();
    }
  });

  it('a first deploy (no live dir, the server down until the restart starts it on the new dir): nothing to check', async () => {
    const env = await makeDeployEnv();
    try {
      await stopServer(env.pidFile);
      await fs.rm(env.live, { recursive: true });
      const r = await runCli(['deploy', '--source', env.source, '--target', `local:${env.root}/target`, '--volume', '/data',
        '--restart-cmd', env.restartCmd, '--health-url', env.url, '--health-timeout', '30s', '--allow-server-down', '--yes', '--json']);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.deepEqual(r.json?.servedDir, { check: 'skipped', file: `${env.live}/chroma.sqlite3`, why: 'no live dir yet (first deploy): nothing serves it' });
    } finally {
      await env.stop();
    }
  });

  it('--plan shows the check among preflight\'s commands, with what it must print', async () => {
    const env = await makeDeployEnv();
    try {
      const r = await runCli(['deploy', '--plan', '--source', env.source, '--target', `local:${env.root}/target`, '--volume', '/data',
        '--restart-cmd', env.restartCmd, '--health-url', env.url, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const pre = r.json.steps.find((s: { name: string }) => s.name === 'preflight');
      const probe = pre.commands.find((c: { command: string }) => c.command.includes('/proc/[0-9]*/fd'));
      assert.ok(probe, JSON.stringify(pre.commands, null, 2));
      assert.ok(probe.command.includes(`${env.live}/chroma.sqlite3`));
      assert.match(probe.expect, /held=1:PID/);
    } finally {
      await env.stop();
    }
  });
});
