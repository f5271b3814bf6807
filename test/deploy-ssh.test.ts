/**
 * Deploys over ssh:// to a real sshd on loopback: hostile paths, an interrupted upload resumed,
 * a chunk truncated in transit (caught before the swap), an unreachable host.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { servedContentDigest } from '../testkit/content-digest.ts';
import { assertInterruptedUploadResumes, assertTruncatedUploadCaught } from './helpers/interrupted-upload.ts';
import { CLI, contentDigestOfDir, deployArgs, digestTree, makeDeployEnv, runCli, TEST_STATE_DIR, type DeployEnv } from './helpers/deploy-env.ts';
import { startSshd, type TestSshd } from './helpers/sshd.ts';

const sshd = await startSshd();
const skip = sshd ? false : 'openssh-server is not installed (see the warning above)';

function sshArgs(d: TestSshd): string[] {
  return ['--ssh-key', d.keyFile, ...d.sshOptions.flatMap((o) => ['--ssh-option', o])];
}

describe('deploy over ssh://', { skip }, () => {
  const d = sshd!;
  after(async () => d?.stop());

  it('works exactly with a volume and db dir full of spaces, quotes, $(...) and ;', async () => {
    const canary = path.join(os.tmpdir(), `ferry-pwned-${process.pid}`);
    const hostileVol = (root: string) => path.join(root, `vol with space/it's "q" $(touch ${canary}); x`);
    const relCanary = `ferry-pwned-db-${process.pid}`; // no "/" allowed in a dir name: lands in $HOME if run
    const dbDir = `db $(touch ${relCanary}) 'q';x \`touch ${relCanary}\``;
    const env = await makeDeployEnv({ volumeOnDisk: hostileVol, dbDir });
    try {
      const sourceDigest = await digestTree(env.source);
      const sourceContent = await contentDigestOfDir(env.source);
      const r = await runCli(deployArgs(env, d.target, env.volumeOnDisk, ['--db-dir', dbDir, ...sshArgs(d)]));
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.equal(r.json.verified, true);
      assert.equal(await servedContentDigest(env.url), sourceContent);
      assert.ok((await fs.stat(`${env.live}.old`)).isDirectory());
      await assert.rejects(fs.access(canary), 'a $(...) in a path was executed');
      await assert.rejects(fs.access(path.join(os.homedir(), relCanary)), 'a $(...) in the db dir was executed');
      await assert.rejects(fs.access(path.join(process.cwd(), relCanary)), 'a $(...) in the db dir was executed');
      assert.equal(await digestTree(env.source), sourceDigest);
    } finally {
      await env.stop();
    }
  });

  describe('upload faults', () => {
    let env: DeployEnv;
    const big = [{ name: 'vectors', count: 3000, dim: 768, space: 'l2' as const }];
    before(async () => { env = await makeDeployEnv({ source: big }); });
    after(async () => env?.stop());

    it('a chunk truncated in transit is caught before the swap; live data untouched', async () => {
      // An sftp that silently drops the last byte of the second upload (what `fly sftp` has been seen to do).
      const bin = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-bin-'));
      const counter = path.join(bin, 'count');
      await fs.writeFile(path.join(bin, 'sftp'), `#!/bin/sh
batch=$(cat)
printf '%s\\n' "$batch" | /usr/bin/sftp "$@" || exit $?
n=$(cat "${counter}" 2>/dev/null || echo 0); n=$((n+1)); echo "$n" > "${counter}"
if [ "$n" = 2 ]; then
  remote=$(printf '%s\\n' "$batch" | sed -n 's/^put "[^"]*" "\\(.*\\)"$/\\1/p')
  truncate -s -1 "$remote"
fi
`, { mode: 0o755 });
      const liveDigest = await digestTree(env.live);
      const r = await runCli(deployArgs(env, d.target, env.volumeOnDisk, ['--chunk-size', '1MiB', '--upload-concurrency', '1', ...sshArgs(d)]), {
        env: { PATH: `${bin}:${process.env.PATH}` },
      });
      await assertTruncatedUploadCaught(env, r, liveDigest);
      await fs.rm(bin, { recursive: true, force: true });
    });

    it('an interrupted upload resumes: verified chunks are not sent again', async () => {
      await assertInterruptedUploadResumes(env, deployArgs(env, d.target, env.volumeOnDisk, ['--chunk-size', '1MiB', '--upload-concurrency', '1', ...sshArgs(d)]));
    });
  });

  it('--upload stream pipes the chunks through ssh stdin; an interrupted stream resumes', async () => {
    const env = await makeDeployEnv({ source: [{ name: 'vectors', count: 2000, dim: 768, space: 'cosine' }] });
    try {
      const sourceContent = await contentDigestOfDir(env.source);
      const args = deployArgs(env, d.target, env.volumeOnDisk, ['--upload', 'stream', '--chunk-size', '1MiB', '--upload-concurrency', '1', ...sshArgs(d)]);
      const child = execa(process.execPath, [CLI, ...args], { reject: false, env: { CI: 'true', CHROMA_FERRY_STATE_DIR: TEST_STATE_DIR }, stdin: 'ignore', forceKillAfterDelay: false });
      const incoming = path.join(env.volumeOnDisk, '.ferry', 'incoming');
      const count = async () => {
        let n = 0;
        for (const id of await fs.readdir(incoming).catch(() => [] as string[])) {
          n += (await fs.readdir(path.join(incoming, id))).filter((f) => f.startsWith('chunk-')).length;
        }
        return n;
      };
      while ((await count()) < 2) await new Promise((res) => setTimeout(res, 10));
      child.kill('SIGTERM');
      const first = await child;
      assert.equal(first.exitCode, 130, String(first.stderr));
      const present = await count();
      const r = await runCli(args);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.equal(r.json.upload.method, 'stream');
      assert.equal(r.json.upload.chunksSkipped, present);
      assert.equal(r.json.upload.chunksSent, r.json.archive.chunks - present);
      assert.equal(await servedContentDigest(env.url), sourceContent);
    } finally {
      await env.stop();
    }
  });

  it('an unreachable host is one clear line and exit 2', async () => {
    const env = await makeDeployEnv();
    try {
      const r = await runCli(deployArgs(env, 'ssh://root@127.0.0.1:1', '/data', sshArgs(d)));
      assert.equal(r.code, 2);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /cannot reach ssh:\/\/root@127\.0\.0\.1:1 over ssh/);
    } finally {
      await env.stop();
    }
  });
});
