/**
 * The ssh connection dropped in the middle of the swap (the sshd process of the session killed
 * right after the first rename, by an `mv` wrapper on the sessions' PATH through the test sshd's
 * `SetEnv PATH`): the detached worker completes the swap on the remote, the CLI reconnects, asks
 * the volume, and goes on to restart and verify. Real sshd, real Chroma.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { listCollectionCounts } from '../lib/chroma/http.ts';
import { listFiles } from '../testkit/tree-digest.ts';
import { deployArgs, makeDeployEnv, runCli, type DeployEnv } from './helpers/deploy-env.ts';
import { mvWrapper, renames, type MvWrapper } from './helpers/swap-faults.ts';
import { startSshd, type TestSshd } from './helpers/sshd.ts';

const faultRoot = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-ssh-fault-'));
const wrap: MvWrapper = await mvWrapper(faultRoot);
const sshd = await startSshd({ extraConfig: [`SetEnv PATH=${wrap.binDir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`] });
const skip = sshd ? false : 'openssh-server is not installed (see the warning above)';

describe('the ssh connection dropped during the swap', { skip }, () => {
  const d = sshd as TestSshd;
  let env: DeployEnv;
  before(async () => { env = await makeDeployEnv(); });
  after(async () => {
    await env?.stop();
    await d?.stop();
    await fs.rm(faultRoot, { recursive: true, force: true });
  });

  it('the worker completes the swap on the remote; the CLI reconnects, reconciles, restarts and verifies (exit 0, never 2)', async () => {
    const oldFiles = await listFiles(env.live);
    await wrap.arm({ ...renames().liveToOld, action: 'drop-ssh' });
    const r = await runCli(deployArgs(env, d.target, env.volumeOnDisk, ['--ssh-key', d.keyFile, ...d.sshOptions.flatMap((o) => ['--ssh-option', o])]));
    assert.ok(await wrap.fired(), 'the connection was dropped at the first rename');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.verified, true);
    assert.ok(r.json.warnings.some((w: string) => /^swap: swapped; after: /.test(w)), r.json.warnings.join('\n'));
    assert.deepEqual((await listCollectionCounts(env.url)).map((c) => [c.name, c.count]), [['books', 300], ['laws', 150]]);
    assert.deepEqual(await listFiles(env.live), await listFiles(env.source));
    assert.deepEqual(await listFiles(`${env.live}.old`), oldFiles, 'the old data kept as NAME.old');
    await assert.rejects(fs.access(path.join(env.volumeOnDisk, '.ferry', 'lock')));
  });
});
