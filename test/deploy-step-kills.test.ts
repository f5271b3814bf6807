/**
 * The CLI SIGKILLed at every step boundary of a deploy (`local:` target, a real Chroma server
 * restarted by the deploy), then what the user does next: the same deploy again, and the command
 * its refusal prints, run exactly as printed (`--from STEP`, `unlock`, `rollback`), until the
 * volume is in a verified state. After the kill and after every command: NAME holds the old or the
 * new data, and the last verified data is still on the volume. At the end: the server serves
 * exactly the data the last command verified, and the volume records it as the verified data.
 * The kill comes at the `--step` prompt of the step (test/helpers/step-kill.ts): the steps before
 * it done and recorded, the step itself not begun.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { servedContentDigest } from '../testkit/content-digest.ts';
import { listFiles } from '../testkit/tree-digest.ts';
import { DEPLOY_STEPS } from '../runbooks/deploy/context.ts';
import { contentDigestOfDir, deployArgs, runCli, waitHeartbeat, type CliResult } from './helpers/deploy-env.ts';
import { killAtStep } from './helpers/step-kill.ts';
import { faultPlayground } from './helpers/fault-playground.ts';
import { HINTS, oneLine, runPrinted, watchVolume, type VolumeWatch, type Which } from './helpers/step-kill-volume.ts';

/** What the user does after the kill, starting with the same deploy again. */
type NextMove = 'nothing more' | 'from' | 'unlock, deploy' | 'unlock, finish' | 'unlock, rollback';

/** Each boundary with what follows it (the moves vary so that each hint is run somewhere). */
const CASES: { step: (typeof DEPLOY_STEPS)[number]; next: NextMove; ends: Which }[] = [
  { step: 'preflight', next: 'nothing more', ends: 'new' },
  { step: 'manifest', next: 'from', ends: 'new' },
  { step: 'backup', next: 'unlock, deploy', ends: 'new' },
  { step: 'package', next: 'from', ends: 'new' },
  { step: 'upload', next: 'from', ends: 'new' },
  { step: 'reassemble', next: 'unlock, deploy', ends: 'new' },
  { step: 'swap', next: 'from', ends: 'new' },
  { step: 'restart', next: 'unlock, finish', ends: 'new' },
  { step: 'verify', next: 'unlock, rollback', ends: 'old' },
  { step: 'cleanup', next: 'from', ends: 'new' },
];

describe('the CLI killed at every step boundary of a deploy (local:)', () => {
  const playground = faultPlayground();
  let newContent: string;

  assert.deepEqual(CASES.map((c) => c.step), [...DEPLOY_STEPS], 'one case per step boundary');

  for (const { step, next, ends } of CASES) {
    it(`killed before ${step}; then: deploy again${next === 'nothing more' ? '' : `, ${next}`}: ${ends === 'new' ? 'the new data verified' : 'the old data back and verified'}`, async () => {
      const { env, target, oldFiles, newFiles, oldContent } = playground.current;
      const cliEnv = playground.cliEnv();
      newContent ??= await contentDigestOfDir(env.source);
      const vol: VolumeWatch = watchVolume(env.volumeOnDisk, 'chroma_db', oldFiles, newFiles);
      const args = deployArgs(env, target, '/data').filter((a) => a !== '--json');

      const killed = await killAtStep(args, step, { env: cliEnv });
      assert.deepEqual(killed.asked, DEPLOY_STEPS.slice(0, DEPLOY_STEPS.indexOf(step) + 1), 'asked before each step, killed at the last');
      await vol.assertSafe(`killed before ${step}`);

      const log: string[] = [];
      const deploy = async () => {
        const r = await runCli([...args, '--json'], { env: { PATH: cliEnv.PATH } });
        log.push(`deploy: exit ${r.code} ${r.stderr.trim()}`);
        await vol.assertSafe(`after deploy again (${log.length})`);
        return r;
      };
      const printed = async (r: CliResult, re: RegExp, what: string) => {
        const out = await runPrinted(oneLine(r), re, cliEnv);
        log.push(`${what}: ${out.hint}: exit ${out.code} ${out.stderr.trim()}`);
        await vol.assertSafe(`after ${out.hint}`);
        return out;
      };

      let last = await deploy();
      if (step === 'preflight') {
        // Killed before anything: nothing holds the volume, the deploy runs through.
        assert.equal(last.code, 0, log.join('\n'));
      } else {
        // The dead run holds the lock: refused, naming how it stopped and what to run.
        assert.equal(last.code, 2, log.join('\n'));
        assert.match(oneLine(last), new RegExp(`another run holds the deploy lock .*it stopped before ${step}: continue it with: .* --from ${step}; or, if no deploy is running, clear the lock with: chroma-ferry unlock `));
        if (next === 'from') {
          last = await printed(last, HINTS.continueFrom, 'as printed');
        } else {
          const un = await printed(last, HINTS.unlock, 'as printed');
          assert.equal(un.code, 0, log.join('\n'));
          last = await deploy();
          if (next !== 'unlock, deploy') {
            // The dead run's new data is live and never verified: a new deploy is refused (the
            // same one again too), naming the --from restart that finishes the dead run and the
            // rollback that puts the old data back; either, as printed, ends verified.
            assert.equal(last.code, 2, log.join('\n'));
            last = await printed(last, next === 'unlock, finish' ? HINTS.finish : HINTS.rollback, 'as printed');
          }
        }
      }
      assert.equal(last.code, 0, log.join('\n'));

      // Verified: the server serves the data the volume records as verified, the lock is gone.
      await waitHeartbeat(env.url, 30_000);
      assert.equal(await vol.assertSafe('at the end'), ends);
      assert.equal(await servedContentDigest(env.url), ends === 'new' ? newContent : oldContent, 'served content');
      const verified = (await fs.readFile(path.join(env.volumeOnDisk, '.ferry', 'verified-chroma_db'), 'utf8')).trim();
      assert.equal((await fs.readFile(path.join(env.live, '.ferry-data-id'), 'utf8')).trim(), verified, 'the live data is the verified data');
      await assert.rejects(fs.access(path.join(env.volumeOnDisk, '.ferry', 'lock')), 'the lock is released');
      if (ends === 'new') assert.deepEqual(await listFiles(`${env.live}.old`), oldFiles, 'the old data is kept as NAME.old');
      // What the scheduled verify checks: the server against what the volume says is deployed.
      const check = await runCli(['verify', '--health-url', env.url, '--target', target, '--volume', '/data', '--samples', '0']);
      assert.equal(check.code, 0, `verify --target at the end: ${check.stdout}${check.stderr}`);
    });
  }
});
