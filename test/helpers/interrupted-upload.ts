import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { listCollectionCounts } from '../../lib/chroma/http.ts';
import { CLI, digestTree, runCli, TEST_STATE_DIR, type CliResult, type DeployEnv } from './deploy-env.ts';

/** The chunk files verified in the volume's incoming dirs (`.ferry/incoming/<id>/chunk-*`). */
export async function incomingChunks(volumeOnDisk: string): Promise<string[]> {
  const root = path.join(volumeOnDisk, '.ferry', 'incoming');
  const out: string[] = [];
  for (const id of await fs.readdir(root).catch(() => [] as string[])) {
    for (const f of await fs.readdir(path.join(root, id))) if (f.startsWith('chunk-')) out.push(path.join(root, id, f));
  }
  return out;
}

/**
 * SIGTERM a deploy (`args`, one chunk at a time) once 3 chunks are on the remote; the live dir is
 * untouched. Rerun it: the verified chunks are not sent again, the same archive is deployed and
 * the server serves the 3,000-record `vectors` collection of the big sample source.
 */
export async function assertInterruptedUploadResumes(env: DeployEnv, args: string[], extraEnv: Record<string, string> = {}): Promise<void> {
  for (const f of await incomingChunks(env.volumeOnDisk)) await fs.rm(f);
  const liveDigest = await digestTree(env.live);
  // forceKillAfterDelay: false: the unwind after SIGTERM may take longer than execa's default 5 s before a SIGKILL on a loaded machine.
  const child = execa(process.execPath, [CLI, ...args], { reject: false, env: { CI: 'true', CHROMA_FERRY_STATE_DIR: TEST_STATE_DIR, ...extraEnv }, stdin: 'ignore', forceKillAfterDelay: false });
  while ((await incomingChunks(env.volumeOnDisk)).length < 3) await new Promise((res) => setTimeout(res, 10));
  child.kill('SIGTERM');
  const first = await child;
  assert.equal(first.exitCode, 130, `${first.signal} ${first.signalDescription} ${String(first.stderr)}`);
  const s1 = JSON.parse(String(first.stdout));
  // Chunks are sent while packing goes on: the transfer was cut in the package step or the upload step.
  const status = (name: string) => s1.steps.find((s: { name: string }) => s.name === name).status;
  assert.ok(status('package') === 'failed' || status('upload') === 'failed', `package ${status('package')}, upload ${status('upload')}`);
  assert.equal(status('swap'), 'not run');
  assert.equal(await digestTree(env.live), liveDigest);
  const present = (await incomingChunks(env.volumeOnDisk)).length;

  const r = await runCli(args, { env: extraEnv });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.ok(present >= 3 && present < r.json.archive.chunks, `present ${present} of ${r.json.archive.chunks}`);
  assert.equal(r.json.upload.chunksSkipped, present);
  assert.equal(r.json.upload.chunksSent, r.json.archive.chunks - present);
  if (s1.archive) assert.equal(r.json.archive.sha256, s1.archive.sha256, 'the same source packs to the same archive');
  assert.deepEqual((await listCollectionCounts(env.url)).map((c) => [c.name, c.count]), [['vectors', 3000]]);
}

/**
 * A deploy (`r`, run with a transport that cut one chunk short) failed on the remote size check:
 * before the swap, the live dir as it was (`liveDigest`), the old data served, the lock released.
 */
export async function assertTruncatedUploadCaught(env: DeployEnv, r: CliResult, liveDigest: string): Promise<void> {
  assert.equal(r.code, 1, r.stderr + r.stdout);
  assert.match(r.json.error, /bytes on the remote, expected \d+ \(truncated upload\)/);
  assert.equal(r.json.steps.find((s: { name: string }) => s.name === 'swap').status, 'not run');
  assert.equal(await digestTree(env.live), liveDigest, 'live dir changed');
  assert.deepEqual((await listCollectionCounts(env.url)).map((c) => c.name), ['legacy']);
  await assert.rejects(fs.access(path.join(env.volumeOnDisk, '.ferry', 'lock')));
}
