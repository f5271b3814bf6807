/**
 * The CLI SIGKILLed at every step boundary of a rollback (`local:` target, a real Chroma server),
 * after a verified deploy of new data over old: then what the user does next, the same rollback
 * again and the command its refusal prints, run exactly as printed, until the old data is served
 * and verified. After the kill and after every command: NAME holds the old or the new data, and
 * the last verified data is still on the volume. The kill comes at the `--step` prompt of the step
 * (test/helpers/step-kill.ts): the steps before it done, the step itself not begun.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { servedContentDigest } from '../testkit/content-digest.ts';
import { deployArgs, runCli, waitHeartbeat, type CliResult } from './helpers/deploy-env.ts';
import { killAtStep } from './helpers/step-kill.ts';
import { faultPlayground } from './helpers/fault-playground.ts';
import { HINTS, oneLine, runPrinted, watchVolume, type VolumeWatch } from './helpers/step-kill-volume.ts';

const ROLLBACK_STEPS = ['preflight', 'stage', 'swap', 'restart', 'verify', 'cleanup'];

describe('the CLI killed at every step boundary of a rollback (local:)', () => {
  const playground = faultPlayground();

  for (const step of ROLLBACK_STEPS) {
    const then = step === 'preflight' ? '' : step === 'cleanup' ? ', the unlock it prints' : ', the unlock it prints, rollback';
    it(`killed before ${step}; then: rollback again${then}: the old data served and verified`, async () => {
      const { env, target, oldFiles, newFiles, oldContent } = playground.current;
      const cliEnv = playground.cliEnv();
      const vol: VolumeWatch = watchVolume(env.volumeOnDisk, 'chroma_db', oldFiles, newFiles);
      const deployed = await runCli(deployArgs(env, target, '/data'));
      assert.equal(deployed.code, 0, deployed.stderr + deployed.stdout);
      assert.equal(await vol.assertSafe('deployed'), 'new');

      const args = ['rollback', '--target', target, '--volume', '/data', '--restart-cmd', env.restartCmd, '--health-url', env.url, '--health-timeout', '30s', '--yes'];
      const killed = await killAtStep(args, step, { env: cliEnv });
      assert.deepEqual(killed.asked, ROLLBACK_STEPS.slice(0, ROLLBACK_STEPS.indexOf(step) + 1), 'asked before each step, killed at the last');
      await vol.assertSafe(`killed before ${step}`);

      const log: string[] = [];
      const rollback = async () => {
        const r = await runCli([...args, '--json'], { env: { PATH: cliEnv.PATH } });
        log.push(`rollback: exit ${r.code} ${r.stderr.trim()}`);
        await vol.assertSafe(`after rollback again (${log.length})`);
        return r;
      };
      const printed = async (r: CliResult, re: RegExp) => {
        const out = await runPrinted(oneLine(r), re, cliEnv);
        log.push(`as printed: ${out.hint}: exit ${out.code} ${out.stdout.trim()} ${out.stderr.trim()}`);
        await vol.assertSafe(`after ${out.hint}`);
        return out;
      };

      let last = await rollback();
      if (step !== 'preflight') {
        // The dead rollback holds the lock: refused, naming the unlock; then the rollback again.
        assert.equal(last.code, 2, log.join('\n'));
        const un = await printed(last, HINTS.unlock);
        assert.equal(un.code, 0, log.join('\n'));
        // Killed before its cleanup, the rollback had verified the old data: nothing is left to do.
        last = step === 'cleanup' ? un : await rollback();
      }
      assert.equal(last.code, 0, log.join('\n'));

      // The old data served and recorded as verified; the deployed data kept; the lock gone.
      await waitHeartbeat(env.url, 30_000);
      assert.equal(await vol.assertSafe('at the end'), 'old');
      assert.equal(await servedContentDigest(env.url), oldContent, 'served content');
      const verified = (await fs.readFile(path.join(env.volumeOnDisk, '.ferry', 'verified-chroma_db'), 'utf8')).trim();
      assert.equal((await fs.readFile(path.join(env.live, '.ferry-data-id'), 'utf8')).trim(), verified, 'the live data is the verified data');
      await assert.rejects(fs.access(path.join(env.volumeOnDisk, '.ferry', 'lock')), 'the lock is released');
      // What the scheduled verify checks: the server against what the volume says is deployed.
      const check = await runCli(['verify', '--health-url', env.url, '--target', target, '--volume', '/data', '--samples', '0']);
      assert.equal(check.code, 0, `verify --target after the rollback: ${check.stdout}${check.stderr}`);
    });
  }
});
