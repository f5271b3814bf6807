/**
 * The deploy's Chroma version check against the far side's userland (Debian roots, chrooted sshd,
 * a real Chroma server on the volume): the `python` profile reads the live dir's own migrations on
 * the remote, the `stock` one (no python3) asks the server's GET /api/v2/version. A source that
 * needs a newer Chroma is refused before anything is uploaded; an older one is deployed with the
 * warning that the server upgrades it in place; without either way the check says it was skipped.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { before, describe, it, type TestContext } from 'node:test';
import pkg from 'node-sqlite3-wasm';
import { listCollectionCounts } from '../lib/chroma/http.ts';
import { readMigrations } from '../lib/chroma/migrations.ts';
import { digestTree, makeDeployEnv, runCli, type DeployEnv } from './helpers/deploy-env.ts';
import { type DebianProfile, type DebianRoot, type RootVolume } from './helpers/debian-root.ts';
import { startRestartRelay, type RestartRelay } from './helpers/restart-relay.ts';
import { chrootedFarSide } from './helpers/far-side.ts';

const { Database } = pkg;

/** Run SQL on a source's chroma.sqlite3 (node-sqlite3-wasm leaves a lock dir beside it: removed). */
async function editSource(source: string, sql: string): Promise<void> {
  const db = new Database(path.join(source, 'chroma.sqlite3'));
  try {
    db.run(sql);
  } finally {
    db.close();
  }
  await fs.rm(path.join(source, 'chroma.sqlite3.lock'), { recursive: true, force: true });
}

/** sysdb 10 (collections.schema_str) first shipped in Chroma 1.3.0; the server here writes sysdb 9. */
const NEEDS_1_3 = "insert into migrations (dir, version, filename, sql, hash) values ('sysdb', 10, '00010-collection-schema.sqlite.sql', 'select 1', 'x')";
/** Without its sysdb 9 row the dir is one that server re-migrates on open (sysdb 9 rebuilds a table, repeatable). */
const OLDER = "delete from migrations where dir = 'sysdb' and version = 9";

for (const profile of ['python', 'stock'] as DebianProfile[]) describe(`the Chroma version check, ${profile} profile far side`, () => {
  const far = chrootedFarSide(profile);
  const ready = (t: TestContext): boolean => far.ready(t);

  /** A deploy env whose volume is inside the root; the CLI's target flags for it. */
  async function withEnv(fn: (env: DeployEnv, vol: RootVolume, target: string[]) => Promise<void>): Promise<void> {
    const vol = await far.root!.makeVolume();
    let env: DeployEnv | undefined;
    try {
      env = await makeDeployEnv({ volumeOnDisk: () => vol.onDisk });
      const d = far.sshd!;
      await fn(env, vol, ['--target', d.target, '--volume', vol.inside, '--ssh-key', d.keyFile, ...d.sshOptions.flatMap((o) => ['--ssh-option', o])]);
    } finally {
      await env?.stop();
      await vol.remove();
    }
  }

  it('a source written by a newer Chroma: refused before anything is uploaded, naming both versions', async (t) => {
    if (!ready(t)) return;
    await withEnv(async (env, vol, target) => {
      await editSource(env.source, NEEDS_1_3);
      const volumeBefore = await digestTree(vol.onDisk);
      const r = await runCli(['deploy', '--source', env.source, ...target, '--restart-cmd', 'exit 1',
        '--health-url', env.url, '--yes', '--json']);
      assert.equal(r.code, 2, r.stderr + r.stdout);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      // python: the live dir's own migrations, read on the remote; stock: the server's version, mapped through the release table.
      const server = profile === 'python'
        ? 'server Chroma >= 1.0.0, < 1.3.0 (its live dir has sysdb 9); upgrade the server to Chroma >= 1.3.0 first, or build the data with Chroma >= 1.0.0, < 1.3.0'
        : `server Chroma 1.0.0 (by ${env.url}/api/v2/version; that release knows sysdb 9); upgrade the server to Chroma >= 1.3.0 first, or build the data with Chroma 1.0.0`;
      assert.equal(lines[0], `chroma-ferry: the source needs a newer Chroma than the server: source written by Chroma >= 1.3.0 (sysdb 10), ${server}`);
      assert.equal(await digestTree(vol.onDisk), volumeBefore, 'the refused deploy changed the volume');
      await assert.rejects(fs.access(path.join(vol.onDisk, '.ferry')), 'no lock, no state, no incoming chunks');
      assert.deepEqual((await listCollectionCounts(env.url)).map((c) => [c.name, c.count]), [['legacy', 40]]);
    });
  });

  if (profile === 'python') {
    it('an older source: deployed and verified, with the warning that the server upgrades it in place, one way', async (t) => {
      if (!ready(t)) return;
      await withEnv(async (env, _vol, target) => {
        await editSource(env.source, OLDER);
        const sourceBefore = await digestTree(env.source);
        let relay: RestartRelay | undefined;
        try {
          relay = await startRestartRelay(far.root!, env.restartCmd);
          const r = await runCli(['deploy', '--source', env.source, ...target, '--restart-cmd', relay.insideCmd,
            '--health-url', env.url, '--health-timeout', '30s', '--yes', '--json']);
          assert.equal(r.code, 0, r.stderr + r.stdout);
          assert.equal(r.json.verified, true);
          assert.deepEqual(r.json.chromaVersion, {
            outcome: 'source-older', via: 'live-dir',
            source: { writtenBy: 'Chroma >= 1.0.0', migrations: { embeddings_queue: 2, metadb: 5, sysdb: 8 } },
            server: { chroma: 'Chroma >= 1.0.0, < 1.3.0', migrations: { embeddings_queue: 2, metadb: 5, sysdb: 9 } },
            note: 'the server (Chroma >= 1.0.0, < 1.3.0) will upgrade the deployed data in place when it opens it (sysdb 8 -> 9), ' +
              'one way: no older Chroma opens it afterwards; the backup this deploy takes is the way back',
          });
          assert.ok(r.json.warnings.includes(r.json.chromaVersion.note), 'the warning is among the summary\'s warnings');
          assert.deepEqual((await listCollectionCounts(env.url)).map((c) => [c.name, c.count]), [['books', 300], ['laws', 150]]);
          // What the warning says happened: the server migrated the deployed dir in place; the source is untouched.
          assert.equal(readMigrations(env.live).sysdb, 9);
          assert.equal(await digestTree(env.source), sourceBefore);
        } finally {
          await relay?.stop();
        }
      });
    });
  } else {
    it('no python3 on the remote and no --health-url: the check is skipped and the summary says why', async (t) => {
      if (!ready(t)) return;
      await withEnv(async (env, _vol, target) => {
        const r = await runCli(['deploy', '--source', env.source, ...target, '--no-verify', '--yes', '--json']);
        assert.equal(r.code, 3, r.stderr + r.stdout);
        const why = 'the remote has no python3 to read the live dir\'s chroma.sqlite3, and no --health-url to ask the server\'s version';
        assert.equal(r.json.chromaVersion.outcome, 'skipped');
        assert.equal(r.json.chromaVersion.note, why);
        assert.ok(r.json.warnings.includes(`Chroma version check skipped: ${why}`), r.stdout);
      });
    });
  }
});
