/**
 * A `fly ssh console` session dropped in the middle of the swap (`fly:` target through the strict
 * fake flyctl): right after the first rename an `mv` wrapper on the machine's PATH kills the
 * session's processes on the machine (the detached swap worker goes on), the fake flyctl ends as
 * flyctl does (an `Error:` line, exit 1, no status marker), and the next two `fly ssh console`
 * calls cannot connect. The CLI takes this for a transport error: it reconnects (with backoff),
 * asks the volume how the swap ended and goes on to restart and verify; never exit 2.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { listCollectionCounts } from '../lib/chroma/http.ts';
import { listFiles } from '../testkit/tree-digest.ts';
import { APP, FAKE, makeFakeFly, type FakeFly } from './helpers/fake-fly.ts';
import { makeDeployEnv, runCli, type DeployEnv } from './helpers/deploy-env.ts';
import { watchVolume } from './helpers/step-kill-volume.ts';
import { flyWrapper, mvWrapper, renames, type MvWrapper } from './helpers/swap-faults.ts';

describe('a fly ssh console session dropped during the swap', () => {
  let env: DeployEnv;
  let fly: FakeFly;
  let root: string;
  let wrap: MvWrapper;
  let flyBin: string;
  before(async () => {
    env = await makeDeployEnv();
    fly = await makeFakeFly(env);
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-fly-drop-'));
    wrap = await mvWrapper(root);
    flyBin = await flyWrapper(root, FAKE);
  });
  after(async () => {
    await env?.stop();
    await fs.rm(fly.dir, { recursive: true, force: true });
    await fs.rm(root, { recursive: true, force: true });
  });

  it('is a transport error: the CLI reconnects, reconciles, restarts and verifies (exit 0, never 2)', async () => {
    const oldFiles = await listFiles(env.live);
    const vol = watchVolume(env.volumeOnDisk, 'chroma_db', oldFiles, await listFiles(env.source));
    await wrap.arm({ ...renames().liveToOld, action: 'drop-fly' });
    const r = await runCli(
      ['deploy', '--source', env.source, '--target', `fly:${APP}`, '--volume', env.volumeOnDisk, '--health-url', env.url, '--health-timeout', '30s', '--yes', '--json'],
      { env: { ...fly.env, PATH: `${flyBin}:${wrap.binDir}:${fly.env.PATH}` } },
    );
    assert.ok(await wrap.fired(), 'the session was dropped at the first rename');
    assert.equal(await fs.readFile(path.join(root, 'fly-down'), 'utf8'), '0\n', 'both failed connections were tried again');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.verified, true);
    assert.ok(r.json.warnings.some((w: string) => /^swap: swapped; after: .*fly ssh console ended before the script reported its status/.test(w)), r.json.warnings.join('\n'));
    assert.deepEqual((await listCollectionCounts(env.url)).map((c) => [c.name, c.count]), [['books', 300], ['laws', 150]]);
    assert.equal(await vol.assertSafe('deployed'), 'new');
    assert.deepEqual(await listFiles(`${env.live}.old`), oldFiles, 'the old data kept as NAME.old');
    await assert.rejects(fs.access(path.join(env.volumeOnDisk, '.ferry', 'lock')));
  });
});
