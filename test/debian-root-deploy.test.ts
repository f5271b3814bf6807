/**
 * The deploy and the day-2 commands over ssh:// into the far side's userland: the test sshd
 * chroots sessions into a Debian root of the `stock` profile (the Chroma image: no curl, wget or
 * python3) or the `python` one (an app image), the volume is inside it, the Chroma server runs on
 * this machine on that volume and is restarted through a relay (test/helpers/restart-relay.ts).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { listCollectionCounts } from '../lib/chroma/http.ts';
import { makeDeployEnv, runCli, type DeployEnv } from './helpers/deploy-env.ts';
import { APP, makeFakeFly, type FakeFly } from './helpers/fake-fly.ts';
import { type DebianRoot, type RootVolume } from './helpers/debian-root.ts';
import { startRestartRelay, type RestartRelay } from './helpers/restart-relay.ts';
import { chrootedFarSide } from './helpers/far-side.ts';

for (const profile of ['stock', 'python'] as const) describe(`the ${profile} profile's userland as the far side (chrooted sshd, chrooted fake fly)`, () => {
  const far = chrootedFarSide(profile);
  const ready = (t: TestContext): boolean => far.ready(t);

  for (const upload of ['sftp', 'stream']) {
    it(`--upload ${upload}: deployed, restarted, verified; the old data kept as .old and a backup${upload === 'sftp' ? '; then verify, backup, backups, pull, rollback' : ''}`, async (t) => {
      if (!ready(t)) return;
      const r0 = far.root!;
      const d = far.sshd!;
      const vol: RootVolume = await r0.makeVolume();
      let env: DeployEnv | undefined;
      let relay: RestartRelay | undefined;
      try {
        env = await makeDeployEnv({ volumeOnDisk: () => vol.onDisk });
        relay = await startRestartRelay(r0, env.restartCmd);
        const r = await runCli(['deploy', '--source', env.source, '--target', d.target, '--volume', vol.inside,
          '--ssh-key', d.keyFile, ...d.sshOptions.flatMap((o) => ['--ssh-option', o]), '--upload', upload,
          '--restart-cmd', relay.insideCmd, '--health-url', env.url, '--health-timeout', '30s', '--yes', '--json']);
        assert.equal(r.code, 0, r.stderr + r.stdout);
        assert.equal(r.json?.verified, true);
        assert.equal(await relay.count(), 1, 'one restart, through the relay');
        assert.deepEqual((await listCollectionCounts(env.url)).map((c) => [c.name, c.count]), [['books', 300], ['laws', 150]]);
        assert.ok((await fs.stat(`${env.live}.old`)).isDirectory());
        const backups = (await fs.readdir(`${vol.onDisk}/.ferry/backups`)).filter((f) => f.endsWith('.tar.gz'));
        assert.equal(backups.length, 1);
        await assert.rejects(fs.access(vol.inside), 'the volume exists inside the root only');
        if (upload === 'sftp') {
          // The day-2 commands on the same far side.
          const target = ['--target', d.target, '--volume', vol.inside, '--ssh-key', d.keyFile, ...d.sshOptions.flatMap((o) => ['--ssh-option', o])];
          const v = await runCli(['verify', '--health-url', env.url, ...target, '--samples', '0', '--json']);
          assert.equal(v.code, 0, v.stderr + v.stdout);
          assert.equal(v.json?.healthy, true);
          const b = await runCli(['backup', ...target, '--json']);
          assert.equal(b.code, 0, b.stderr + b.stdout);
          const list = await runCli(['backups', ...target, '--json']);
          assert.equal(list.code, 0, list.stderr);
          assert.equal(list.json?.length, 2);
          const out = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-pull-'));
          try {
            const pull = await runCli(['backups', 'pull', 'latest', ...target, '--to', out, '--json']);
            assert.equal(pull.code, 0, pull.stderr + pull.stdout);
            assert.equal(pull.json?.status, 'downloaded');
            assert.deepEqual(await fs.readdir(out), [pull.json.name]);
          } finally {
            await fs.rm(out, { recursive: true, force: true });
          }
          const rb = await runCli(['rollback', ...target, '--restart-cmd', relay.insideCmd, '--health-url', env.url, '--health-timeout', '30s', '--yes', '--json']);
          assert.equal(rb.code, 0, rb.stderr + rb.stdout);
          assert.equal(await relay.count(), 2);
          assert.deepEqual((await listCollectionCounts(env.url)).map((c) => [c.name, c.count]), [['legacy', 40]]);
        }
      } finally {
        await relay?.stop();
        await env?.stop();
        await vol.remove();
      }
    });
  }

  it('fly: through the fake fly whose -C commands run inside the root (sftp put into it, machine restart)', async (t) => {
    if (!ready(t)) return;
    const r0 = far.root!;
    const vol: RootVolume = await r0.makeVolume();
    let env: DeployEnv | undefined;
    let fly: FakeFly | undefined;
    try {
      env = await makeDeployEnv({ volumeOnDisk: () => vol.onDisk });
      fly = await makeFakeFly(env, { chrootRoot: r0.path });
      const r = await runCli(['deploy', '--source', env.source, '--target', `fly:${APP}`, '--volume', vol.inside, '--upload', 'sftp',
        '--health-timeout', '30s', '--yes', '--json'], { env: fly.env });
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.equal(r.json?.verified, true);
      assert.deepEqual((await listCollectionCounts(env.url)).map((c) => [c.name, c.count]), [['books', 300], ['laws', 150]]);
      assert.ok((await fly.calls()).some((c) => c[0] === 'sftp' && c[1] === 'put'));
    } finally {
      await env?.stop();
      if (fly) await fs.rm(fly.dir, { recursive: true, force: true });
      await vol.remove();
    }
  });
});
