import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { listCollectionCounts } from '../lib/chroma/http.ts';
import { listFiles } from '../testkit/tree-digest.ts';
import { servedContentDigest } from '../testkit/content-digest.ts';
import { contentDigestOfDir, deployArgs, digestTree, makeDeployEnv, runCli, type DeployEnv } from './helpers/deploy-env.ts';

describe('deploy to local:', () => {
  let env: DeployEnv;
  let target: string;
  before(async () => {
    env = await makeDeployEnv({ volumeOnDisk: (root) => path.join(root, 'target', 'data') });
    target = `local:${path.join(env.root, 'target')}`;
  });
  after(async () => env?.stop());

  it('replaces the live dir, restarts, verifies counts, keeps .old and a backup; source untouched', async () => {
    const sourceDigest = await digestTree(env.source);
    const sourceContent = await contentDigestOfDir(env.source);
    assert.notEqual(await servedContentDigest(env.url), sourceContent);
    const liveFilesBefore = await listFiles(env.live);
    const r = await runCli(deployArgs(env, target, '/data'));
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const s = r.json;
    assert.equal(s.ok, true);
    assert.equal(s.verified, true);
    assert.deepEqual(s.steps.map((x: { status: string }) => x.status), ['done', 'done', 'done', 'done', 'done', 'done', 'done', 'done', 'done', 'done']);
    assert.ok(s.downtimeMs > 0 && s.restartMs >= 0);
    // One read of the source's chroma.sqlite3 (migrations + counts, in the preflight) serves the
    // manifest step too: its snapshot holds the same file.
    assert.match(s.steps[1].note, /^2 collections, 450 records \(counted in the preflight's read of the source, unchanged since\)$/);
    assert.equal(s.chromaVersion.outcome, 'same');
    assert.ok(s.archive.compressionRatio > 0 && s.archive.compressionRatio < 1);
    assert.equal(s.upload.chunksSent, s.archive.chunks);

    // The restarted server serves exactly the source's collections and counts.
    const served = await listCollectionCounts(env.url);
    assert.deepEqual(served.map((c) => [c.name, c.count]), [['books', 300], ['laws', 150]]);
    assert.equal(await servedContentDigest(env.url), sourceContent, 'every record, document, metadata and embedding');
    // The live dir holds the source's files (contents differ once a server has opened them:
    // Chroma rewrites chroma.sqlite3 and the HNSW headers on load).
    assert.deepEqual(await listFiles(env.live), await listFiles(env.source));
    // The previous live dir is kept as NAME.old.
    assert.deepEqual(await listFiles(`${env.live}.old`), liveFilesBefore);
    // A checked backup archive exists, work files are gone, the lock is released.
    const ferry = path.join(env.volumeOnDisk, '.ferry');
    const backups = (await fs.readdir(path.join(ferry, 'backups'))).filter((f) => f.endsWith('.tar.gz'));
    assert.equal(backups.length, 1);
    assert.match(backups[0]!, /^chroma_db-\d{8}T\d{6}Z\.tar\.gz$/);
    assert.deepEqual(await fs.readdir(path.join(ferry, 'incoming')), []);
    await assert.rejects(fs.access(path.join(ferry, 'lock')));
    assert.equal(await digestTree(env.source), sourceDigest, 'the source dir must be byte-identical');
  });

  it('the backup\'s tar + gzip starts once a chunk is on the remote or the packing has ended, not before', async () => {
    // A `tar` first on the PATH of the remote side (local: runs it in the CLI's environment)
    // notes, for the backup's `tar czf`, whether a chunk had been accepted into the incoming dir,
    // else whether the packing had written its manifest in the run's work dir.
    const bin = path.join(env.root, 'tar-wrapper');
    const log = path.join(env.root, 'tar-wrapper.log');
    const work = path.join(env.root, 'tar-wrapper-work');
    await fs.mkdir(bin, { recursive: true });
    const realTar = (await execa('sh', ['-c', 'command -v tar'])).stdout.trim();
    await fs.writeFile(path.join(bin, 'tar'), [
      '#!/bin/sh',
      'if [ "$1" = czf ]; then',
      '  if ls "$FERRY_TEST_INCOMING"/*/chunk-* >/dev/null 2>&1; then echo chunk-on-remote >> "$FERRY_TEST_TAR_LOG"',
      '  elif ls "$FERRY_TEST_WORK"/chroma-ferry-*/chunks/manifest.json >/dev/null 2>&1; then echo packed >> "$FERRY_TEST_TAR_LOG"',
      '  else echo too-early >> "$FERRY_TEST_TAR_LOG"; fi',
      'fi',
      'exec "$FERRY_TEST_REAL_TAR" "$@"',
      '',
    ].join('\n'), { mode: 0o755 });
    const incoming = path.join(env.volumeOnDisk, '.ferry', 'incoming');
    assert.deepEqual(await fs.readdir(incoming).catch(() => []), [], 'no incoming dir before the run');
    const r = await runCli(deployArgs(env, target, '/data', ['--keep-backups', '5', '--work-dir', work]), {
      env: { PATH: `${bin}:${process.env.PATH}`, FERRY_TEST_INCOMING: incoming, FERRY_TEST_TAR_LOG: log, FERRY_TEST_REAL_TAR: realTar, FERRY_TEST_WORK: work },
    });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.steps.find((x: { name: string }) => x.name === 'backup').status, 'done');
    const seen = (await fs.readFile(log, 'utf8')).trim().split('\n');
    assert.equal(seen.length, 1, seen.join(' '));
    assert.ok(['chunk-on-remote', 'packed'].includes(seen[0]!), `the backup's tar czf ran ${seen[0]}`);
  });

  it('a second deploy keeps --keep-backups archives and resends nothing it does not need', async () => {
    for (let i = 0; i < 2; i++) {
      const r = await runCli(deployArgs(env, target, '/data', ['--keep-backups', '2']));
      assert.equal(r.code, 0, r.stderr + r.stdout);
      await new Promise((res) => setTimeout(res, 1100)); // backups are named by the second
    }
    const backups = (await fs.readdir(path.join(env.volumeOnDisk, '.ferry', 'backups'))).filter((f) => f.endsWith('.tar.gz'));
    assert.equal(backups.length, 2);
  });
});
