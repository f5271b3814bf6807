/**
 * The deploy's local files: it works in `--work-dir`/chroma-ferry-<run id> and removes only that;
 * a work dir overlapping the source, or an existing file, is refused untouched. The remote
 * runbook state names no local path, and a crafted one (naming a local folder as the work dir or
 * the snapshot) makes the deploy neither delete nor pack that folder. Real files, a `local:`
 * target and a real Chroma server.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { execa } from 'execa';
import { listCollectionCounts } from '../lib/chroma/http.ts';
import { deployArgs, digestTree, makeDeployEnv, runCli, type CliResult, type DeployEnv } from './helpers/deploy-env.ts';

const NEW_SERVED = [['books', 300], ['laws', 150]];
const MARKER = `ferry-marker-${process.pid}`;

describe('deploy --work-dir and the runbook state (local:)', () => {
  let env: DeployEnv;
  let target: string;
  before(async () => {
    env = await makeDeployEnv();
    target = `local:${path.join(env.root, 'target')}`;
  });
  after(async () => env?.stop());

  const stateFile = () => path.join(env.volumeOnDisk, '.ferry', 'state-deploy-chroma_db.json');
  const served = async () => (await listCollectionCounts(env.url)).map((c) => [c.name, c.count]);
  const oneLineRefusal = (r: CliResult, message: RegExp) => {
    assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
    assert.match(lines[0]!, message);
  };
  const runDirsIn = async (dir: string) => (await fs.readdir(dir)).filter((n) => n.startsWith('chroma-ferry-'));

  it('a work dir that is, contains or lies inside the source is refused, nothing deleted', async () => {
    // build/chroma_db is the source, build/notes.txt the user's: `--work-dir build` used to delete both.
    const build = path.join(env.root, 'build');
    const source = path.join(build, 'chroma_db');
    await fs.cp(env.source, source, { recursive: true });
    await fs.writeFile(path.join(build, 'notes.txt'), 'mine\n');
    await fs.symlink(source, path.join(env.root, 'link to source'));
    const before = await digestTree(build);
    const volumeBefore = await digestTree(env.volumeOnDisk);
    const withSource = (workDir: string, extra: string[] = []) => ['deploy', '--source', source, ...deployArgs(env, target, '/data', ['--work-dir', workDir, ...extra]).slice(3)];

    oneLineRefusal(await runCli(withSource(build)), /--work-dir .*build: contains --source .*pass a directory outside the source/);
    oneLineRefusal(await runCli(withSource(source)), /--work-dir .*: is the --source dir/);
    oneLineRefusal(await runCli(withSource(path.join(env.root, 'link to source'))), /--work-dir .*link to source: is the --source dir/);
    oneLineRefusal(await runCli(withSource(path.join(source, 'tmp'))), /--work-dir .*: lies inside --source/);
    oneLineRefusal(await runCli(withSource(build, ['--plan'])), /--work-dir .*build: contains --source/);
    assert.equal(await digestTree(build), before, 'the source and notes.txt are untouched');
    assert.equal(await digestTree(env.volumeOnDisk), volumeBefore, 'nothing changed on the target');
  });

  it('an existing file as --work-dir is refused and left as it was', async () => {
    const file = path.join(env.root, 'scratch');
    await fs.writeFile(file, 'not a directory\n');
    const volumeBefore = await digestTree(env.volumeOnDisk);
    oneLineRefusal(await runCli(deployArgs(env, target, '/data', ['--work-dir', file])), /--work-dir .*scratch: exists and is not a directory/);
    assert.equal(await fs.readFile(file, 'utf8'), 'not a directory\n');
    assert.equal(await digestTree(env.volumeOnDisk), volumeBefore);
  });

  it('--plan creates and removes only its own dir inside the work dir', async () => {
    const workDir = path.join(env.root, 'plan work');
    const r = await runCli(['deploy', '--plan', '--json', '--source', env.source, '--target', target, '--volume', '/data', '--work-dir', workDir, '--no-verify']);
    assert.equal(r.code, 0, r.stderr);
    const own = path.join(workDir, `chroma-ferry-${r.json.runId}`);
    assert.equal(r.json.workDir, own);
    const local = r.json.steps.flatMap((s: { commands: { via: string; command: string }[] }) => s.commands).filter((c: { via: string }) => c.via === 'this machine');
    const removals = local.filter((c: { command: string }) => /^rm /.test(c.command));
    assert.deepEqual(removals.map((c: { command: string }) => c.command), [`rm -rf '${own}'`]);
    await assert.rejects(fs.access(workDir), 'the plan itself writes nothing');
  });

  it('a work dir holding other files: the deploy succeeds, removes only its own dir; the remote state names no local path', async () => {
    const workDir = path.join(env.root, 'scratch dir');
    await fs.mkdir(workDir);
    await fs.writeFile(path.join(workDir, 'notes.txt'), 'keep me\n');
    const r = await runCli(deployArgs(env, target, '/data', ['--work-dir', workDir]));
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.verified, true);
    assert.deepEqual(await served(), NEW_SERVED);
    assert.deepEqual(await fs.readdir(workDir), ['notes.txt'], 'no chroma-ferry-* left, the rest kept');
    assert.equal(await fs.readFile(path.join(workDir, 'notes.txt'), 'utf8'), 'keep me\n');

    const remote = await fs.readFile(stateFile(), 'utf8');
    for (const local of [workDir, env.source, `chroma-ferry-${r.json.runId}`, '"snapshotDir"', '"chunksDir"', '"workDir"', '"runDir"', '"local"']) {
      assert.ok(!remote.includes(local), `the remote state names ${local}: ${remote}`);
    }
    const localState = JSON.parse(await fs.readFile(r.json.stateFiles.local, 'utf8'));
    assert.equal(localState.runId, r.json.runId);
    assert.equal(localState.local.preflight.runDir, path.join(await fs.realpath(workDir), `chroma-ferry-${r.json.runId}`), 'the local copy keeps the paths');

    // A work dir that does not exist yet is created (and left, empty).
    const fresh = path.join(env.root, 'new', 'work');
    const r2 = await runCli(deployArgs(env, target, '/data', ['--work-dir', fresh]));
    assert.equal(r2.code, 0, r2.stderr + r2.stdout);
    assert.deepEqual(await fs.readdir(fresh), []);
  });

  it('--only manifest then --from package resume from the local state, only with the same work dir', async () => {
    const workDir = path.join(env.root, 'resume work');
    const first = await runCli(deployArgs(env, target, '/data', ['--only', 'manifest', '--work-dir', workDir]));
    assert.equal(first.code, 0, first.stderr + first.stdout);
    const own = `chroma-ferry-${first.json.runId}`;
    assert.deepEqual(await runDirsIn(workDir), [own], 'the snapshot is kept for --from package');
    const remote = await fs.readFile(stateFile(), 'utf8');
    assert.equal(JSON.parse(remote).steps.manifest, 'done');
    assert.ok(!remote.includes(workDir) && !remote.includes(own), `the remote state names the snapshot: ${remote}`);

    oneLineRefusal(await runCli(deployArgs(env, target, '/data', ['--from', 'package'])),
      /--from package: package needs the snapshot of run \w+ in this run's work dir .*outside it; take it again with --from manifest \(or pass the --work-dir run \w+ used\)/);
    const r = await runCli(deployArgs(env, target, '/data', ['--from', 'package', '--work-dir', workDir]));
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.runId, first.json.runId);
    assert.equal(r.json.verified, true);
    assert.deepEqual(await runDirsIn(workDir), []);
  });

  describe('a crafted remote state naming a local folder (a fake ~/.ssh)', () => {
    let fakeSsh: string;
    let sshDigest: string;
    before(async () => {
      // A real deploy first: its remote state is the one crafted below.
      const r = await runCli(deployArgs(env, target, '/data'));
      assert.equal(r.code, 0, r.stderr + r.stdout);
    });
    beforeEach(async () => {
      fakeSsh = path.join(env.root, 'fake home', '.ssh');
      await fs.rm(fakeSsh, { recursive: true, force: true });
      await fs.mkdir(fakeSsh, { recursive: true });
      await fs.writeFile(path.join(fakeSsh, 'id_ed25519'), `${MARKER}\n`);
      sshDigest = await digestTree(fakeSsh);
    });

    /** The last real state, made to name the fake ~/.ssh as the snapshot and `workDir` as the work dir, manifest done. */
    async function craftState(runId: string, workDir: string): Promise<void> {
      const real = JSON.parse(await fs.readFile(stateFile(), 'utf8'));
      const steps = Object.fromEntries(Object.keys(real.steps).map((n) => [n, ['preflight', 'manifest', 'backup'].includes(n) ? 'done' : 'not run']));
      const crafted = {
        ...real, runId, finished: false, outcome: undefined, steps,
        results: {
          ...real.results,
          preflight: { ...real.results.preflight, source: env.source, workDir, runDir: workDir },
          manifest: { ...real.results.manifest, snapshotDir: fakeSsh },
        },
        local: { preflight: { source: env.source, runDir: workDir }, manifest: { snapshotDir: fakeSsh } },
      };
      await fs.writeFile(stateFile(), JSON.stringify(crafted));
    }

    /** No file of the fake ~/.ssh anywhere on the volume: not live, not kept as .failed, not in a backup or incoming. */
    async function assertMarkerNowhere(): Promise<void> {
      const files = await fs.readdir(env.volumeOnDisk, { recursive: true });
      assert.ok(!files.some((f) => f.endsWith('id_ed25519')), `the fake key reached the volume: ${files.join(', ')}`);
      for (const f of files.filter((n) => n.endsWith('.tar.gz'))) {
        const { stdout } = await execa('tar', ['-tzf', path.join(env.volumeOnDisk, f)]);
        assert.ok(!stdout.includes('id_ed25519'), `a backup holds the fake key: ${f}`);
      }
      assert.equal(await digestTree(fakeSsh), sshDigest, 'the fake ~/.ssh is untouched');
    }

    it('a plain deploy deletes nothing of it', async () => {
      await craftState('0123456789ab', fakeSsh);
      const r = await runCli(deployArgs(env, target, '/data'));
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.deepEqual(await served(), NEW_SERVED);
      await assertMarkerNowhere();
    });

    it('--from package neither packs nor removes it: refused, the volume unchanged', async () => {
      // The work dir it names: another folder of the user's.
      const otherDir = path.join(env.root, 'fake home', 'work');
      await fs.mkdir(otherDir, { recursive: true });
      await fs.writeFile(path.join(otherDir, 'keep.txt'), 'mine\n');
      const localRun = JSON.parse(await fs.readFile(stateFile(), 'utf8')).runId as string;
      // A run id this machine never ran (no local state of it), and the run id of this machine's state.
      for (const [runId, message] of [
        ['0123456789ab', /--from package: package needs the snapshot of run 0123456789ab .*this machine has no state of run 0123456789ab .*take it again with --from manifest/],
        [localRun, new RegExp(`--from package: the remote state of run ${localRun} differs from this machine's copy`)],
      ] as const) {
        await craftState(runId, otherDir);
        const volumeBefore = await digestTree(env.volumeOnDisk);
        const r = await runCli(deployArgs(env, target, '/data', ['--from', 'package']));
        oneLineRefusal(r, message);
        assert.equal(await digestTree(env.volumeOnDisk), volumeBefore, 'nothing changed on the volume');
        await assertMarkerNowhere();
        assert.deepEqual(await fs.readdir(otherDir), ['keep.txt']);
      }
      assert.deepEqual(await served(), NEW_SERVED);
    });
  });
});
