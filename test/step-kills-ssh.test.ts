/**
 * The CLI SIGKILLed at step boundaries over a real sshd (a representative subset of the `local:`
 * tables in deploy-step-kills.test.ts and rollback-step-kills.test.ts): a deploy killed before its
 * swap and before its restart, a rollback killed before its restart; then what the user does next,
 * each printed command run exactly as printed, until verified. After every command NAME holds the
 * old or the new data and the last verified data is on the volume.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { servedContentDigest } from '../testkit/content-digest.ts';
import { listFiles } from '../testkit/tree-digest.ts';
import { contentDigestOfDir, deployArgs, makeDeployEnv, runCli, TEST_STATE_DIR, waitHeartbeat, type CliResult, type DeployEnv } from './helpers/deploy-env.ts';
import { startSshd, type TestSshd } from './helpers/sshd.ts';
import { killAtStep } from './helpers/step-kill.ts';
import { chromaFerryShim, HINTS, oneLine, runPrinted, watchVolume, type VolumeWatch, type Which } from './helpers/step-kill-volume.ts';

const sshd = await startSshd();
const skip = sshd ? false : 'openssh-server is not installed (see the warning above)';

describe('the CLI killed at step boundaries (ssh://)', { skip }, () => {
  const d = sshd as TestSshd;
  let shim: Awaited<ReturnType<typeof chromaFerryShim>>;
  let newContent: string | undefined;
  before(async () => { shim = await chromaFerryShim(); });
  after(async () => {
    await shim?.dispose();
    await d?.stop();
  });

  /** A fresh playground and the commands of its user, over ssh. */
  async function playground(): Promise<{
    env: DeployEnv; vol: VolumeWatch; oldContent: string; cliEnv: Record<string, string>; target: string[];
    run(args: string[]): Promise<CliResult>; printed(r: CliResult, re: RegExp): Promise<CliResult>; log: string[];
  }> {
    const env = await makeDeployEnv();
    const target = ['--target', d.target, '--volume', env.volumeOnDisk, '--ssh-key', d.keyFile, ...d.sshOptions.flatMap((o) => ['--ssh-option', o])];
    const cliEnv = { CI: 'true', CHROMA_FERRY_STATE_DIR: TEST_STATE_DIR, PATH: `${shim.dir}:${process.env.PATH}` };
    const vol = watchVolume(env.volumeOnDisk, 'chroma_db', await listFiles(env.live), await listFiles(env.source));
    const oldContent = await servedContentDigest(env.url);
    newContent ??= await contentDigestOfDir(env.source);
    const log: string[] = [];
    return {
      env, vol, oldContent, cliEnv, target, log,
      async run(args) {
        const r = await runCli(args, { env: { PATH: cliEnv.PATH } });
        log.push(`${args[0]}: exit ${r.code} ${r.stderr.trim()}`);
        await vol.assertSafe(`after ${args[0]} (${log.length})`);
        return r;
      },
      async printed(r, re) {
        const out = await runPrinted(oneLine(r), re, cliEnv);
        log.push(`as printed: ${out.hint}: exit ${out.code} ${out.stderr.trim()}`);
        await vol.assertSafe(`after ${out.hint}`);
        return out;
      },
    };
  }

  /** Served, recorded as verified, the lock released. */
  async function assertVerified(env: DeployEnv, vol: VolumeWatch, ends: Which, content: string): Promise<void> {
    await waitHeartbeat(env.url, 30_000);
    assert.equal(await vol.assertSafe('at the end'), ends);
    assert.equal(await servedContentDigest(env.url), content, 'served content');
    const verified = (await fs.readFile(path.join(env.volumeOnDisk, '.ferry', 'verified-chroma_db'), 'utf8')).trim();
    assert.equal((await fs.readFile(path.join(env.live, '.ferry-data-id'), 'utf8')).trim(), verified, 'the live data is the verified data');
    await assert.rejects(fs.access(path.join(env.volumeOnDisk, '.ferry', 'lock')), 'the lock is released');
  }

  for (const step of ['swap', 'restart'] as const) {
    it(`deploy killed before ${step}; then: deploy again, the --from ${step} it prints: the new data verified`, async () => {
      const p = await playground();
      try {
        const args = deployArgs(p.env, d.target, p.env.volumeOnDisk, p.target.slice(4)).filter((a) => a !== '--json');
        const killed = await killAtStep(args, step, { env: p.cliEnv });
        assert.equal(killed.asked.at(-1), step);
        await p.vol.assertSafe(`killed before ${step}`);
        const again = await p.run([...args, '--json']);
        assert.equal(again.code, 2, p.log.join('\n'));
        const resumed = await p.printed(again, HINTS.continueFrom);
        assert.match((resumed as CliResult & { hint: string }).hint, new RegExp(`--ssh-key .* --from ${step}$`));
        assert.equal(resumed.code, 0, p.log.join('\n'));
        await assertVerified(p.env, p.vol, 'new', newContent!);
      } finally {
        await p.env.stop();
      }
    });
  }

  it('rollback killed before restart; then: rollback again, the unlock it prints, rollback: the old data verified', async () => {
    const p = await playground();
    try {
      assert.equal((await p.run(deployArgs(p.env, d.target, p.env.volumeOnDisk, p.target.slice(4)))).code, 0, p.log.join('\n'));
      const args = ['rollback', ...p.target, '--restart-cmd', p.env.restartCmd, '--health-url', p.env.url, '--health-timeout', '30s', '--yes'];
      const killed = await killAtStep(args, 'restart', { env: p.cliEnv });
      assert.equal(killed.asked.at(-1), 'restart');
      await p.vol.assertSafe('rollback killed before restart');
      const again = await p.run([...args, '--json']);
      assert.equal(again.code, 2, p.log.join('\n'));
      assert.equal((await p.printed(again, HINTS.unlock)).code, 0, p.log.join('\n'));
      assert.equal((await p.run([...args, '--json'])).code, 0, p.log.join('\n'));
      await assertVerified(p.env, p.vol, 'old', p.oldContent);
    } finally {
      await p.env.stop();
    }
  });
});
