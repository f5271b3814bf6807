/**
 * Data ids, the verified record, the journaled swap and the volume inspection, each run for real
 * under a LocalHost in a temp volume (real dirs, real renames, a real detached worker). Faults
 * come from an `mv` wrapper first on PATH that fails or kills at a chosen call.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { RemoteCommandError } from '../../lib/common/errors.ts';
import { REFUSALS, refusalOf, type RefusalReason } from '../../lib/remote/refusals.ts';
import { archiveDataId, DATA_ID_FILE, liveBeforeId, recordVerifiedScript, verifiedFile, writeDataIdScript } from '../../lib/volume/data-id.ts';
import { journaledSwapScript, parseSwapJournal, parseSwapOutcome, swapJournalFile, swapLogFile, swapPidFile, swapTrashPath, type SwapIds } from '../../lib/volume/swap-journal.ts';
import { inspectVolumeScript, parseVolumeFacts } from '../../lib/volume/volume-facts.ts';
import { injectMvFault, OwnSessionHost, tempVolume, withMvWrapperOnPath, type TempVolume } from './local-volume.ts';

const RUN = 'run0001';
const NEW = archiveDataId('a'.repeat(64), RUN);
const LIVE = 'archive:' + 'b'.repeat(64) + '@run0000';
const OLD = 'archive:' + 'c'.repeat(64) + '@runffff';

/** A data dir holding a file `data` with `content`, and `id` in its id file (none when undefined). */
export async function dataDir(dir: string, content: string, id?: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'data'), content);
  if (id) await fs.writeFile(path.join(dir, DATA_ID_FILE), `${id}\n`);
}

/** The `data` file's content of each place (undefined: nothing there). */
async function contents(v: TempVolume, runId = RUN): Promise<Record<string, string | undefined>> {
  const read = (d: string) => fs.readFile(path.join(d, 'data'), 'utf8').catch(() => undefined);
  const { live, next, old } = v.layout;
  return { live: await read(live), next: await read(next), old: await read(old), trash: await read(swapTrashPath(v.layout, runId)) };
}

/** The id files of NAME, NAME.new, NAME.old (undefined: none). */
async function idFiles(v: TempVolume): Promise<(string | undefined)[]> {
  return Promise.all([v.layout.live, v.layout.next, v.layout.old].map((d) => fs.readFile(path.join(d, DATA_ID_FILE), 'utf8').catch(() => undefined)));
}

async function failure(p: Promise<unknown>): Promise<RemoteCommandError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof RemoteCommandError, String(e));
    return e;
  }
  assert.fail('expected the script to fail');
}

function assertRefused(e: RemoteCommandError, reason: RefusalReason): void {
  assert.equal(e.exitCode, REFUSALS[reason].code, e.message);
  assert.equal(refusalOf(e)?.reason, reason);
}

async function facts(v: TempVolume) {
  return parseVolumeFacts((await v.host.run(inspectVolumeScript(v.layout))).stdout);
}

describe('data ids and the verified record', () => {
  let v: TempVolume;
  beforeEach(async () => { v = await tempVolume(); });
  afterEach(async () => { await v.dispose(); });

  it('writes an id into a real dir; refuses a symlink and a missing dir; never takes shell text as an id', async () => {
    await dataDir(v.layout.next, 'n');
    await v.host.run(writeDataIdScript(v.layout.next, NEW));
    assert.equal(await fs.readFile(path.join(v.layout.next, DATA_ID_FILE), 'utf8'), `${NEW}\n`);
    assert.deepEqual((await fs.readdir(v.layout.next)).sort(), [DATA_ID_FILE, 'data']);
    await fs.symlink(v.layout.next, v.layout.live);
    assertRefused(await failure(v.host.run(writeDataIdScript(v.layout.live, NEW))), 'not-a-dir');
    assertRefused(await failure(v.host.run(writeDataIdScript(v.layout.old, NEW))), 'not-a-dir');
    assert.throws(() => writeDataIdScript(v.layout.next, 'archive:$(rm -rf /)'), /not a data id/);
    assert.throws(() => archiveDataId('nothex', RUN), /not a sha256/);
  });

  it('records the verified id only for the data that is live', async () => {
    await dataDir(v.layout.live, 'l', LIVE);
    assertRefused(await failure(v.host.run(recordVerifiedScript(v.layout, NEW))), 'volume-changed');
    await assert.rejects(fs.access(verifiedFile(v.layout)));
    await v.host.run(recordVerifiedScript(v.layout, LIVE));
    assert.equal(await fs.readFile(verifiedFile(v.layout), 'utf8'), `${LIVE}\n`);
    assert.equal((await facts(v)).verifiedId, LIVE);
    assert.deepEqual((await fs.readdir(v.layout.ferry)).filter((f) => f.includes('.tmp')), []);
  });
});

describe('the journaled swap', () => {
  let v: TempVolume;
  withMvWrapperOnPath();
  beforeEach(async () => { v = await tempVolume(); });
  afterEach(async () => { await v.dispose(); });

  const ids: SwapIds = { live: LIVE, next: NEW, old: OLD };

  it('moves old to the trash, live to old, new to live; the journal says done; inspect sees it all', async () => {
    await dataDir(v.layout.live, 'L', LIVE);
    await dataDir(v.layout.old, 'O', OLD);
    await dataDir(v.layout.next, 'N', NEW);
    const r = await v.host.run(journaledSwapScript(v.layout, RUN, ids, { waitSeconds: 20 }));
    assert.deepEqual(parseSwapOutcome(r.stdout), { phase: 'done', workerRc: 0 });
    assert.deepEqual(await contents(v), { live: 'N', next: undefined, old: 'L', trash: 'O' });
    const f = await facts(v);
    assert.deepEqual([f.live, f.next, f.old, f.trash], [{ kind: 'dir', id: NEW }, { kind: 'missing' }, { kind: 'dir', id: LIVE }, { kind: 'dir', id: OLD }]);
    assert.equal(f.journal !== 'corrupt' && f.journal?.phase, 'done');
    assert.deepEqual(f.journal !== 'corrupt' && f.journal?.ids, ids);
    assert.equal(f.worker, 'gone');
    assert.equal(f.lock, undefined);
    const log = await fs.readFile(swapLogFile(v.layout), 'utf8');
    assert.match(log, /phase old-moved\n.*\n.*phase live-moved\n.*\n.*phase done\n$/);
  });

  it('stamps a live dir and an old dir that carry no id, then swaps (the first deploy after an old tool)', async () => {
    await dataDir(v.layout.live, 'L');
    await dataDir(v.layout.old, 'O');
    await dataDir(v.layout.next, 'N', NEW);
    await v.host.run(journaledSwapScript(v.layout, RUN, { live: liveBeforeId(RUN), next: NEW, old: `old-before:${RUN}` }));
    const f = await facts(v);
    assert.deepEqual([f.live.id, f.old.id, f.trash?.id], [NEW, liveBeforeId(RUN), `old-before:${RUN}`]);
  });

  it('a first deploy: only NAME.new; the journal holds only its id', async () => {
    await dataDir(v.layout.next, 'N', NEW);
    await v.host.run(journaledSwapScript(v.layout, RUN, { next: NEW }));
    assert.deepEqual(await contents(v), { live: 'N', next: undefined, old: undefined, trash: undefined });
    const j = parseSwapJournal(await fs.readFile(swapJournalFile(v.layout), 'utf8'));
    assert.deepEqual(j !== 'corrupt' && j.ids, { next: NEW });
  });

  for (const [name, setup, ids2, reason] of [
    ['NAME.new without its id', async (t: TempVolume) => { await dataDir(t.layout.next, 'N'); await dataDir(t.layout.live, 'L', LIVE); }, { live: LIVE, next: NEW }, 'volume-changed'],
    ['NAME holding other data than inspected', async (t: TempVolume) => { await dataDir(t.layout.next, 'N', NEW); await dataDir(t.layout.live, 'L', OLD); }, { live: LIVE, next: NEW }, 'volume-changed'],
    ['a NAME.old that appeared since', async (t: TempVolume) => { await dataDir(t.layout.next, 'N', NEW); await dataDir(t.layout.old, 'O', OLD); }, { next: NEW }, 'volume-changed'],
    ['a symlinked NAME', async (t: TempVolume) => { await dataDir(t.layout.next, 'N', NEW); await dataDir(path.join(t.layout.volume, 'releases', 'v1'), 'L', LIVE); await fs.symlink('releases/v1', t.layout.live); }, { live: LIVE, next: NEW }, 'not-a-dir'],
    ['NAME.old holding the last verified data (NAME without id: not stamped either)', async (t: TempVolume) => {
      await dataDir(t.layout.next, 'N', NEW); await dataDir(t.layout.live, 'L'); await dataDir(t.layout.old, 'O', OLD);
      await fs.mkdir(t.layout.ferry, { recursive: true }); await fs.writeFile(verifiedFile(t.layout), `${OLD}\n`);
    }, { ...ids, live: liveBeforeId(RUN) }, 'verified-in-the-way'],
    ['an unfinished swap journal of another run', async (t: TempVolume) => {
      await dataDir(t.layout.next, 'N', NEW); await dataDir(t.layout.live, 'L', LIVE);
      await fs.mkdir(t.layout.ferry, { recursive: true });
      await fs.writeFile(swapJournalFile(t.layout), `${JSON.stringify({ v: 1, runId: 'other', phase: 'live-moved', ids: { next: OLD }, startedAt: 'x' })}\n`);
    }, { live: LIVE, next: NEW }, 'volume-changed'],
  ] as const) {
    it(`refuses ${name} before anything is renamed`, async () => {
      await setup(v);
      const before = { ...(await contents(v)), ids: await idFiles(v) };
      const journalBefore = await fs.readFile(swapJournalFile(v.layout), 'utf8').catch(() => undefined);
      assertRefused(await failure(v.host.run(journaledSwapScript(v.layout, RUN, ids2))), reason);
      assert.deepEqual({ ...(await contents(v)), ids: await idFiles(v) }, before);
      assert.equal(await fs.readFile(swapJournalFile(v.layout), 'utf8').catch(() => undefined), journalBefore);
    });
  }

  it('a rename that fails makes the worker reverse itself: old data back, journal reversed, swap-reversed', async () => {
    await dataDir(v.layout.live, 'L', LIVE);
    await dataDir(v.layout.old, 'O', OLD);
    await dataDir(v.layout.next, 'N', NEW);
    // mv calls: 1 journal intent, 2 old->trash, 3 journal, 4 live->old, 5 journal, 6 new->live: it fails.
    await injectMvFault(v, 6, 'fail');
    const e = await failure(v.host.run(journaledSwapScript(v.layout, RUN, ids)));
    assertRefused(e, 'swap-reversed');
    assert.match(refusalOf(e) ? REFUSALS['swap-reversed'].line(refusalOf(e)!.details, { host: 'h', volume: 'v' }) : '', /old data restored; server not verified/);
    assert.deepEqual(await contents(v), { live: 'L', next: 'N', old: 'O', trash: undefined });
    const f = await facts(v);
    assert.equal(f.journal !== 'corrupt' && f.journal?.phase, 'reversed');
  });

  it('runs detached: the process group of the connection killed between two renames, the worker still finishes', async () => {
    await dataDir(v.layout.live, 'L', LIVE);
    await dataDir(v.layout.old, 'O', OLD);
    await dataDir(v.layout.next, 'N', NEW);
    const session = new OwnSessionHost(v.root);
    // At mv call 4 (live -> old) the wrapper kills the launcher's process group: the dropped session.
    await injectMvFault(v, 4, 'kill-session');
    const e = await failure(session.run(journaledSwapScript(v.layout, RUN, ids)));
    assert.equal(refusalOf(e), undefined, 'the launcher died: no status of its own');
    const f = await facts(v); // waits for the worker
    assert.equal(f.journal !== 'corrupt' && f.journal?.phase, 'done');
    assert.deepEqual(await contents(v), { live: 'N', next: undefined, old: 'L', trash: 'O' });
  });

  it('inspect: a swap worker still running is reported alive (and waited for); a recorded pid of another process is none', async () => {
    await fs.mkdir(v.layout.ferry, { recursive: true });
    const worker = spawn('sh', ['-c', 'read -r line', 'ferry-swap'], { stdio: ['pipe', 'ignore', 'ignore'] });
    const exited = new Promise((r) => worker.once('exit', r));
    try {
      await fs.writeFile(swapPidFile(v.layout), `${worker.pid}\n`);
      assert.equal(parseVolumeFacts((await v.host.run(inspectVolumeScript(v.layout, 0))).stdout).worker, 'alive');
      worker.stdin.end('done\n');
      await exited;
      assert.equal((await facts(v)).worker, 'gone');
      await fs.writeFile(swapPidFile(v.layout), `${process.pid}\n`);
      assert.equal((await facts(v)).worker, 'none');
    } finally {
      worker.kill('SIGKILL');
    }
  });

  it('inspect reports kinds, a foreign id file as no id, a corrupt journal, the lock holder', async () => {
    await fs.mkdir(v.layout.ferry, { recursive: true });
    await fs.writeFile(v.layout.live, 'a file where the live dir should be');
    await dataDir(v.layout.old, 'O', 'not an id; rm -rf /');
    await fs.writeFile(swapJournalFile(v.layout), '{"v":1,"runId":"../../etc","phase":"done"}\n');
    await fs.mkdir(v.layout.lock);
    await fs.writeFile(path.join(v.layout.lock, 'owner.json'), '{"runId":"r9","user":"ana","host":"lap","pid":7,"startedAt":"t"}\n');
    const f = await facts(v);
    assert.deepEqual(f.live, { kind: 'file' });
    assert.deepEqual(f.old, { kind: 'dir' });
    assert.deepEqual(f.next, { kind: 'missing' });
    assert.equal(f.journal, 'corrupt');
    assert.equal(f.trash, undefined);
    assert.equal(f.lock?.runId, 'r9');
    assert.equal(f.worker, 'none');
  });
});
