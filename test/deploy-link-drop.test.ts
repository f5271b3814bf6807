/**
 * Resume across a link drop, on an emulated 50 Mbit/s link (a private network namespace whose lo
 * is shaped with tc tbf; sshd, Chroma and the CLI all in it): a deploy over ssh loses its
 * connection right after the remote accepted chunk k, half of the archive's chunks (the `mv`
 * wrapper on the sessions' PATH kills the connection's sshd after that rename: a known point, no
 * timing). The run fails before the swap; the next deploy sends only the chunks the remote does
 * not have, from what the summaries say (`upload.bytesSent`, `upload.bytesSkipped`), and verifies.
 * Real sshd, real Chroma.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { packToChunks } from '../lib/archive/pack.ts';
import { listCollectionCounts } from '../lib/chroma/http.ts';
import { loopbackUp, shapeLoopback } from '../testkit/shaped-link.ts';
import { deployArgs, digestTree, makeDeployEnv, runCli, type DeployEnv } from './helpers/deploy-env.ts';
import { incomingChunks } from './helpers/interrupted-upload.ts';
import { inLinkNamespace, reRunInLinkNamespace } from './helpers/link-namespace.ts';
import { startSshd, type TestSshd } from './helpers/sshd.ts';
import { mvWrapper } from './helpers/swap-faults.ts';

const RATE = '50mbit';
const MiB = 1024 * 1024;
const TITLE = `deploy over a ${RATE} link: the ssh connection dropped at half the chunks, the rerun sends only the rest`;

if (!inLinkNamespace()) {
  await reRunInLinkNamespace(TITLE, fileURLToPath(import.meta.url), /bytes sent by run/);
} else {
  await loopbackUp();
  const faultRoot = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-link-drop-'));
  const wrap = await mvWrapper(faultRoot);
  const sshd = await startSshd({ extraConfig: [`SetEnv PATH=${wrap.binDir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`] });

  describe(TITLE, { skip: sshd ? false : 'openssh-server is not installed (see the warning above)' }, () => {
    const d = sshd as TestSshd;
    let env: DeployEnv;
    let chunks: number;
    before(async () => {
      // 6,000 x 768 float32 (random, barely compressible): an archive of ~20 MiB, 1 MiB chunks, ~3.5 s at 50 Mbit/s.
      env = await makeDeployEnv({ source: [{ name: 'vectors', count: 6000, dim: 768, space: 'l2' }] });
      const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-link-count-'));
      chunks = (await packToChunks(env.source, scratch, MiB, { hashOnly: true })).chunks.length;
      await fs.rm(scratch, { recursive: true, force: true });
      // The playground is built: from now on everything on lo (ssh, the health checks) goes at the link's rate.
      await shapeLoopback(RATE);
    });
    after(async () => {
      await env?.stop();
      await d?.stop();
      await fs.rm(faultRoot, { recursive: true, force: true });
    });

    it('run 1 fails before the swap at ~50% sent; run 2 sends total - run 1 (the verified chunks are not sent again) and verifies', async (t) => {
      assert.ok(chunks >= 16, `a source of 16+ chunks, got ${chunks}`);
      const args = deployArgs(env, d.target, env.volumeOnDisk, ['--ssh-key', d.keyFile, ...d.sshOptions.flatMap((o) => ['--ssh-option', o]),
        '--chunk-size', '1MiB', '--upload-concurrency', '1']);
      const liveDigest = await digestTree(env.live);
      // The connection dies right after the remote gave chunk k its name: chunks 0..k are there, verified.
      const k = Math.floor(chunks / 2) - 1;
      const name = `chunk-${String(k).padStart(6, '0')}`;
      await wrap.arm({ from: `/.${name}.partial`, to: `/${name}`, action: 'drop-ssh' });

      const r1 = await runCli(args);
      assert.ok(await wrap.fired(), `the connection was dropped at ${name}'s acceptance`);
      // The connection lost mid-upload: the run fails before the swap with its summary (exit 1), the lock released.
      assert.equal(r1.code, 1, r1.stderr + r1.stdout);
      assert.match(r1.json.error, /cannot reach ssh:\/\/.* over ssh/);
      const status = (name: string) => r1.json.steps.find((s: { name: string }) => s.name === name).status;
      assert.ok(status('package') === 'failed' || status('upload') === 'failed', `package ${status('package')}, upload ${status('upload')}`);
      assert.equal(status('swap'), 'not run');
      assert.equal(await digestTree(env.live), liveDigest, 'the live dir is untouched');
      await assert.rejects(fs.access(path.join(env.volumeOnDisk, '.ferry', 'lock')), 'the lock released');
      const onRemote = await incomingChunks(env.volumeOnDisk);
      // Chunks 0..k: no chunk starts once chunk k has failed (not even while its failure settles).
      assert.equal(onRemote.length, k + 1, `chunks 0..${k} verified on the remote, got ${onRemote.length}`);
      const remoteBytes = (await Promise.all(onRemote.map((f) => fs.stat(f)))).reduce((n, s) => n + s.size, 0);
      const sent1 = r1.json.upload.bytesSent;
      // Chunk k reached the remote, but its answer was lost with the connection: run 1 cannot count it.
      assert.equal(sent1, remoteBytes - MiB, `run 1's bytesSent: the chunks it saw accepted (${r1.json.upload.chunksSent})`);
      assert.equal(r1.json.upload.bytesSkipped, 0);

      const r2 = await runCli(args);
      assert.equal(r2.code, 0, r2.stderr + r2.stdout);
      assert.equal(r2.json.verified, true);
      assert.deepEqual((await listCollectionCounts(env.url)).map((c) => [c.name, c.count]), [['vectors', 6000]]);
      const total = r2.json.archive.bytes;
      const { bytesSent: sent2, bytesSkipped: skipped2 } = r2.json.upload;
      t.diagnostic(`bytes sent by run 1: ${sent1} (${((100 * sent1) / total).toFixed(0)}% of ${total}, then the drop), by run 2: ${sent2} (${skipped2} already on the remote, not sent again)`);
      assert.equal(r2.json.archive.chunks, chunks, 'the deploy packs the chunks counted beforehand');
      assert.equal(skipped2, remoteBytes, 'run 2 skips exactly what the remote had verified');
      assert.equal(sent2 + skipped2, total);
      assert.ok(sent2 >= total - sent1 - MiB && sent2 <= total - sent1, `run 2 sent ${sent2}: total ${total} - run 1's ${sent1}, less the chunk whose answer was lost`);
      assert.ok(sent1 >= 0.35 * total && sent1 <= 0.65 * total, `run 1 sent about half: ${sent1} of ${total}`);
      assert.equal(r2.json.upload.chunksSkipped, onRemote.length);
    });
  });
}
