/**
 * `--from STEP` takes over the undos of the recorded run's completed steps (its swap, its NAME.new):
 * they go on the compensation stack only once this run holds the volume lock, above the lock's
 * release. So an unwind runs them while the lock is still held, and a run refused by its preflight
 * (another run holds the lock) undoes nothing of the recorded run. A LocalHost volume in a temp
 * dir, the real swap scripts, no servers.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import type { SqliteManifest } from '../../lib/chroma/sqlite-manifest.ts';
import { LocalHost } from '../../lib/hosts/local.ts';
import type { RunOptions, RunResult } from '../../lib/hosts/remote-host.ts';
import { newState, RunbookStateStore, stateDifference } from '../../lib/engine/state.ts';
import { lockScript } from '../../lib/remote/scripts.ts';
import { remoteScript, type RemoteScript } from '../../lib/remote/shell.ts';
import { HostPutUploader } from '../../lib/transfer/sftp.ts';
import { archiveDataId, DATA_ID_FILE } from '../../lib/volume/data-id.ts';
import { swapIn } from '../../lib/volume/deploy-swap.ts';
import { inspectVolume } from '../../lib/volume/volume-reconciler.ts';
import { lockOwnerRecord } from '../../lib/volume/lock.ts';
import { DEPLOY_STEP_OBJECTS, DEPLOY_STEPS, newDeployCtx, runDeploy, type DeployOptions } from '../../runbooks/deploy/index.ts';
import { usePackedArchive, type PackedArchive } from '../../runbooks/deploy/context.ts';
import { tempVolume, type TempVolume } from './local-volume.ts';

const RUN = 'a1b2c3d4e5f6';
const SHA = 'b'.repeat(64);
const MANIFEST: SqliteManifest = {
  collections: [{ tenant: 'default_tenant', database: 'default_database', name: 'books', id: 'c0ffee', count: 3, dimension: 4, space: 'l2' }],
  totalRecords: 3, schemaVersion: [], pendingWrites: 0,
};
const PACKED: PackedArchive = {
  deployId: '0123456789abcdef', sha256: SHA, bytes: 10, inputBytes: 20,
  chunks: [{ name: 'chunk-000000', size: 10, sha256: 'c'.repeat(64) }], fileCount: 1, fileListSha256: 'd'.repeat(64),
};

/** The run's last state write came before its last lock release: the state belongs to the lock holder. */
function assertStateBeforeRelease(titles: string[]): void {
  const released = titles.lastIndexOf('release the deploy lock');
  const lastWrite = titles.lastIndexOf('write the runbook state');
  assert.ok(released >= 0 && lastWrite >= 0 && lastWrite < released, `the state is written while the lock is still held: ${titles.join(', ')}`);
}

/**
 * A LocalHost that records the title of every script it runs, in order (and in `events`, each
 * script's start and end); its restart command fails unless one is given.
 */
class TitleLog extends LocalHost {
  readonly titles: string[] = [];
  readonly events: string[] = [];
  constructor(root: string, restartCmd = 'exit 7') {
    super(root, restartCmd);
  }
  override async run(script: RemoteScript, opts: RunOptions = {}): Promise<RunResult> {
    this.titles.push(script.title);
    this.events.push(`start ${script.title}`);
    try {
      return await super.run(script, opts);
    } finally {
      this.events.push(`end ${script.title}`);
    }
  }
}

describe('--from: the recorded run\'s undos go above the lock', () => {
  let v: TempVolume;
  let host: TitleLog;
  let source: string;
  const nextId = archiveDataId(SHA, RUN);

  // This machine's copy of the runbook state: in a temp dir of its own.
  let stateDir: TempVolume;
  const savedStateDir = process.env.CHROMA_FERRY_STATE_DIR;
  before(async () => {
    stateDir = await tempVolume();
    process.env.CHROMA_FERRY_STATE_DIR = path.join(stateDir.root, 'state');
  });
  after(async () => {
    if (savedStateDir === undefined) delete process.env.CHROMA_FERRY_STATE_DIR;
    else process.env.CHROMA_FERRY_STATE_DIR = savedStateDir;
    await stateDir.dispose();
  });
  beforeEach(async () => {
    v = await tempVolume();
    host = new TitleLog(v.root);
    source = path.join(v.root, 'source');
    await fs.mkdir(source);
    await fs.writeFile(path.join(source, 'chroma.sqlite3'), crypto.randomBytes(1024));
  });
  afterEach(() => v.dispose());

  const options = (o: Partial<DeployOptions> = {}): DeployOptions => ({
    source, host, uploader: new HostPutUploader(host), volume: '/vol', dbDir: 'chroma_db', chunkSize: 1024 * 1024, healthTimeoutMs: 1000,
    keepBackups: 2, uploadConcurrency: 1, workDir: path.join(v.root, 'work'), output: 'json', signal: new AbortController().signal, ...o,
  });

  /**
   * The volume a deploy killed right after its `last` step leaves: after the reassemble NAME.new in
   * place; after the swap the new data live, the old as NAME.old, the journal done. The lock still
   * held by that run, its state recorded up to `last`.
   */
  async function crashedAfter(last: 'reassemble' | 'swap'): Promise<void> {
    const { layout } = v;
    await fs.mkdir(layout.live);
    await fs.writeFile(path.join(layout.live, 'chroma.sqlite3'), 'old data');
    await fs.mkdir(layout.next);
    await fs.writeFile(path.join(layout.next, 'chroma.sqlite3'), 'new data');
    await fs.writeFile(path.join(layout.next, DATA_ID_FILE), `${nextId}\n`);
    const out = last === 'swap' ? await swapIn(host, layout, RUN, nextId) : undefined;
    if (out) assert.equal(out.status, 'done');
    await host.run(lockScript(layout, lockOwnerRecord(RUN, 'deploy', { startedAt: new Date() })));
    const store = new RunbookStateStore(host, layout, 'deploy');
    const ctx = newDeployCtx(options(), { runId: RUN, workRoot: path.join(v.root, 'work'), store, earlyUpload: false });
    ctx.manifest = MANIFEST;
    usePackedArchive(ctx, PACKED);
    ctx.nextId = nextId;
    if (out) ctx.swap = { hadLive: true, movedOld: false, ids: out.ids };
    const state = newState('deploy', RUN, host.label, layout.live, DEPLOY_STEPS);
    for (const step of DEPLOY_STEP_OBJECTS.slice(0, DEPLOY_STEPS.indexOf(last) + 1)) {
      state.steps[step.name] = 'done';
      state.results[step.name] = step.result!.save(ctx);
    }
    await store.save(state);
    host.titles.length = 0;
  }
  const crashedAfterSwap = () => crashedAfter('swap');

  const idOf = async (dir: string) => (await fs.readFile(path.join(dir, DATA_ID_FILE), 'utf8').catch(() => '')).trim();

  it('a failed restart unwinds the recorded swap first, then releases the lock', async () => {
    await crashedAfterSwap();
    const s = await runDeploy(options({ from: 'restart' }));
    assert.equal(s.ok, false);
    const reversed = host.titles.indexOf('reverse an interrupted swap');
    const released = host.titles.lastIndexOf('release the deploy lock');
    assert.ok(reversed >= 0, `the swap was undone: ${host.titles.join(', ')}`);
    assert.ok(released > reversed, `the lock is released after the swap's undo, not before: ${host.titles.join(', ')}`);
    assertStateBeforeRelease(host.titles);
    assert.deepEqual(s.rollback.map((u) => u.name), ['swap', 'reassemble', 'lock'], 'newest first, the lock last');
    // The old data is live again and the lock is gone.
    assert.equal(await fs.readFile(path.join(v.layout.live, 'chroma.sqlite3'), 'utf8'), 'old data');
    assert.equal((await inspectVolume(host, v.layout)).lock, undefined);
  });

  it('a run that ends with its cleanup writes its closing state before the lock goes (in the cleanup\'s one command)', async () => {
    await crashedAfterSwap();
    const s = await runDeploy(options({ from: 'verify', noVerify: true }));
    assert.equal(s.ok, true, `${s.error}; ${s.warnings.join('; ')}`);
    const cleanup = host.titles.lastIndexOf('remove remote work files and the trashed previous NAME.old, release the deploy lock');
    assert.ok(cleanup >= 0, host.titles.join(', '));
    assert.deepEqual(host.titles.slice(cleanup + 1).filter((t) => t === 'write the runbook state'), [], `no state write after the lock went: ${host.titles.join(', ')}`);
    const { remote, local } = await new RunbookStateStore(host, v.layout, 'deploy').loadBoth();
    assert.equal(remote?.finished, true);
    assert.equal(remote?.outcome, 'deployed, not verified');
    assert.equal(remote?.steps.cleanup, 'done');
    assert.equal(stateDifference(remote!, local!), undefined, 'both copies say the same');
    assert.equal((await inspectVolume(host, v.layout)).lock, undefined);
  });

  it('a partial run (--only) saves its state, then releases the lock', async () => {
    await crashedAfterSwap();
    const s = await runDeploy(options({ only: 'verify', noVerify: true }));
    assert.equal(s.ok, true, `${s.error}; ${s.warnings.join('; ')}`);
    assertStateBeforeRelease(host.titles);
    assert.equal((await inspectVolume(host, v.layout)).lock, undefined);
  });

  it('the restart command starts while "swap done, restart running" is written (no state write of its own in the downtime window)', async () => {
    host = new TitleLog(v.root, 'true');
    await crashedAfter('reassemble');
    const s = await runDeploy(options({ from: 'swap', noVerify: true }));
    assert.equal(s.ok, true, `${s.error}; ${s.warnings.join('; ')}`);
    const ev = host.events;
    const swapEnd = ev.indexOf('end swap the new dir in (journaled)');
    const restartStart = ev.indexOf('start restart command');
    const recordEnd = ev.indexOf('end write the runbook state', swapEnd);
    assert.ok(swapEnd >= 0 && restartStart > swapEnd, ev.join(', '));
    assert.ok(recordEnd > restartStart, `the restart started before the record of its start ended: ${ev.join(', ')}`);
    const { remote } = await new RunbookStateStore(host, v.layout, 'deploy').loadBoth();
    assert.equal(remote?.steps.swap, 'done');
    assert.equal(remote?.steps.restart, 'done');
    assert.equal(await idOf(v.layout.live), nextId);
  });

  it('refused by its preflight (another run holds the lock): nothing of the recorded run is undone', async () => {
    await crashedAfterSwap();
    // Another run took the lock since (the crashed run's lock was cleared, a new one taken).
    await host.run(remoteScript('clear the lock', 'rm -rf "$1"', [v.layout.lock]));
    await host.run(lockScript(v.layout, lockOwnerRecord('otherrun0001', 'deploy', { startedAt: new Date() })));
    host.titles.length = 0;
    await assert.rejects(runDeploy(options({ from: 'restart' })), /another run holds the deploy lock/);
    assert.ok(!host.titles.includes('reverse an interrupted swap'), `no undo ran: ${host.titles.join(', ')}`);
    assert.equal(await idOf(v.layout.live), nextId, 'the recorded run\'s new data is still live');
    assert.equal((await inspectVolume(host, v.layout)).lock?.runId, 'otherrun0001', 'the other run\'s lock is untouched');
  });
});
