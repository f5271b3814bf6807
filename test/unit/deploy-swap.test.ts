/**
 * The runbooks' side of the journaled swap (lib/volume/deploy-swap.ts) under a LocalHost in a temp
 * volume: the swap's end is read from the volume whatever happened to the launcher (its session
 * killed, its worker killed, the connection lost before and after), the undo goes by the journal,
 * NAME.new is removed only when safe, what a command is refused with names runnable commands, and
 * retention keeps the newest backup of the verified data. Plus the hints (lib/cli/command-hint.ts).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { applyRetention, backupNow } from '../../lib/backups/operations.ts';
import { commandHints } from '../../lib/cli/command-hint.ts';
import { HostUnreachable, UserError } from '../../lib/common/errors.ts';
import type { RunOptions, RunResult } from '../../lib/hosts/remote-host.ts';
import { LocalHost } from '../../lib/hosts/local.ts';
import type { RemoteScript } from '../../lib/remote/shell.ts';
import { DATA_ID_FILE, recordVerifiedScript, verifiedFile } from '../../lib/volume/data-id.ts';
import { reconcileBeforeCommand, removeUnusedNext, swapIn, undoSwap } from '../../lib/volume/deploy-swap.ts';
import { journaledSwapScript, swapTrashPath } from '../../lib/volume/swap-journal.ts';
import { clearMvFault, injectMvFault, OwnSessionHost, tempVolume, withMvWrapperOnPath, type TempVolume } from './local-volume.ts';

const RUN = 'run0001';
const L = 'archive:' + 'b'.repeat(64) + '@run0000';
const N = 'archive:' + 'a'.repeat(64) + '@run0001';
const O = 'archive:' + 'c'.repeat(64) + '@runffff';

async function dataDir(dir: string, content: string, id?: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'data'), content);
  if (id) await fs.writeFile(path.join(dir, DATA_ID_FILE), `${id}\n`);
}

async function contents(v: TempVolume): Promise<Record<string, string | undefined>> {
  const read = (d: string) => fs.readFile(path.join(d, 'data'), 'utf8').catch(() => undefined);
  const { live, next, old } = v.layout;
  return { live: await read(live), next: await read(next), old: await read(old), trash: await read(swapTrashPath(v.layout, RUN)) };
}

async function seed(v: TempVolume): Promise<void> {
  await dataDir(v.layout.live, 'L', L);
  await dataDir(v.layout.old, 'O', O);
  await dataDir(v.layout.next, 'N', N);
}

const SWAPPED = { live: 'N', next: undefined, old: 'L', trash: 'O' };
const BEFORE = { live: 'L', next: 'N', old: 'O', trash: undefined };

/**
 * A LocalHost whose connection "drops" (HostUnreachable, what SshHost throws for ssh's exit 255):
 * the swap launcher runs, then its connection is lost; the volume inspections numbered in
 * `lostInspects` (1 = the first) fail without running.
 */
class FlakyHost extends LocalHost {
  private inspects = 0;
  constructor(root: string, private readonly lostInspects: (n: number) => boolean) {
    super(root);
  }

  override async run(script: RemoteScript, opts: RunOptions = {}): Promise<RunResult> {
    if (script.title === 'inspect the volume' && this.lostInspects(++this.inspects)) throw new HostUnreachable(`cannot reach ${this.label} over ssh: Connection refused`);
    const r = await super.run(script, opts);
    if (/journaled/.test(script.title)) throw new HostUnreachable(`cannot reach ${this.label} over ssh: Broken pipe`);
    return r;
  }
}

describe('swapIn and undoSwap', () => {
  let v: TempVolume;
  withMvWrapperOnPath();
  beforeEach(async () => {
    v = await tempVolume();
    await seed(v);
  });
  afterEach(async () => v.dispose());

  it('swaps, and the undo by the journal puts everything back and keeps the rejected data as NAME.failed-<stamp>', async () => {
    let launched = false;
    const out = await swapIn(v.host, v.layout, RUN, N, { onLaunch: () => { launched = true; } });
    assert.equal(out.status, 'done');
    assert.deepEqual(out.ids, { live: L, next: N, old: O }, 'the ids the launcher found');
    assert.ok(launched);
    assert.deepEqual(await contents(v), SWAPPED);
    const undo = await undoSwap(v.host, v.layout, RUN, out.ids);
    assert.equal(undo.restored, true);
    assert.equal(undo.renamed, true);
    assert.match(undo.failedDir ?? '', /chroma_db\.failed-\d{8}T\d{6}Z$/);
    assert.equal(await fs.readFile(path.join(undo.failedDir!, 'data'), 'utf8'), 'N');
    assert.deepEqual(await contents(v), { ...BEFORE, next: undefined });
    // Again: nothing left to undo.
    assert.deepEqual(await undoSwap(v.host, v.layout, RUN, out.ids), { restored: true, renamed: false });
  });

  it('the launcher\'s whole session killed between the renames: the detached worker finishes and the volume says done', async () => {
    const session = new OwnSessionHost(v.root);
    await injectMvFault(v, 4, 'kill-session');
    const out = await swapIn(session, v.layout, RUN, N);
    await clearMvFault(v);
    assert.equal(out.status, 'done');
    assert.match(out.note ?? '', /^swapped; after: /);
    assert.deepEqual(await contents(v), SWAPPED);
  });

  it('the worker killed between the renames (NAME missing): the run finishes its own swap', async () => {
    await injectMvFault(v, 5, 'kill-before'); // the journal write after live -> old: the worker dies there
    const out = await swapIn(v.host, v.layout, RUN, N);
    await clearMvFault(v);
    assert.equal(out.status, 'done');
    assert.match(out.note ?? '', /this run finished it after: the swap of run run0001 stopped at phase/);
    assert.deepEqual(await contents(v), SWAPPED);
  });

  it('a rename that fails: the worker reverses itself and the run reports not-swapped (old data live)', async () => {
    await injectMvFault(v, 6, 'fail');
    const out = await swapIn(v.host, v.layout, RUN, N);
    await clearMvFault(v);
    assert.equal(out.status, 'not-swapped');
    assert.deepEqual(await contents(v), BEFORE);
  });

  it('the connection lost after the launch and twice more while reconnecting: bounded retries, then the volume says done', async () => {
    const lines: string[] = [];
    // The launch's connection drops after it ran; the look that follows fails twice, then works.
    const flaky = new FlakyHost(v.root, (n) => n <= 2);
    const out = await swapIn(flaky, v.layout, RUN, N, { onReconnect: (l) => lines.push(l), firstDelayMs: 20 });
    assert.equal(out.status, 'done');
    assert.deepEqual(await contents(v), SWAPPED);
    assert.ok(lines.filter((l) => /reconnecting/.test(l)).length >= 2, lines.join('\n'));
  });

  it('an unreachable host after the launch: a clear error (not a refusal), the swap left to the remote', async () => {
    const gone = new FlakyHost(v.root, () => true);
    const e = await swapIn(gone, v.layout, RUN, N, { retries: 1, firstDelayMs: 20 }).catch((x: unknown) => x);
    assert.ok(e instanceof Error && !(e instanceof UserError), String(e));
    assert.match(e.message, /started .* but its end is unknown .* the next chroma-ferry command finishes or reverses it/);
  });

  it('NAME.new is removed only when NAME is there and no swap is unfinished', async () => {
    await fs.rm(v.layout.live, { recursive: true });
    assert.equal(await removeUnusedNext(v.host, v.layout, N), false);
    assert.equal((await contents(v)).next, 'N');
    await dataDir(v.layout.live, 'L', L);
    assert.equal(await removeUnusedNext(v.host, v.layout, 'archive:' + 'd'.repeat(64) + '@run0009'), false, 'another run\'s data');
    assert.equal(await removeUnusedNext(v.host, v.layout, N), true);
    assert.equal((await contents(v)).next, undefined);
  });
});

describe('before a command', () => {
  let v: TempVolume;
  beforeEach(async () => { v = await tempVolume(); });
  afterEach(async () => v.dispose());

  const hints = commandHints(['deploy', '--source', 'my db', '--target', 'local:/t', '--volume', '/vol', '--restart-cmd', 'systemctl restart chroma',
    '--health-url', 'http://h:8000', '--keep-backups', '1', '--yes', '--json'], ['--yes', '--json']);

  it('unverified data swapped in by a recorded run: a deploy is refused with its --from and a rollback, each a whole command', async () => {
    await seed(v);
    await v.host.run(recordVerifiedScript(v.layout, L));
    await v.host.run(journaledSwapScript(v.layout, RUN, { live: L, next: N, old: O }));
    const e = await reconcileBeforeCommand(v.host, v.layout, { command: 'deploy', runId: 'run0002', recordedDeployRunId: RUN, hints }).catch((x: unknown) => x);
    assert.ok(e instanceof UserError);
    assert.equal(e.exitCode, 2);
    assert.match(e.message, /finish it with: chroma-ferry deploy --source 'my db' --target local:\/t --volume \/vol --restart-cmd 'systemctl restart chroma' --health-url http:\/\/h:8000 --keep-backups 1 --yes --json --from restart; or put the previous data back with: chroma-ferry rollback --target local:\/t --volume \/vol --restart-cmd 'systemctl restart chroma' --health-url http:\/\/h:8000 --yes --json$/);
    // The run itself goes on; a rollback is allowed; nothing was renamed.
    assert.ok((await reconcileBeforeCommand(v.host, v.layout, { command: 'deploy', runId: RUN, hints })).ownSwap);
    await reconcileBeforeCommand(v.host, v.layout, { command: 'rollback', runId: 'run0003', hints });
    assert.deepEqual(await contents(v), SWAPPED);
  });

  it('NAME missing, no journal: refused, naming the rollback; a rollback may proceed', async () => {
    await dataDir(v.layout.old, 'O', O);
    await fs.mkdir(v.layout.ferry, { recursive: true });
    await fs.writeFile(verifiedFile(v.layout), `${O}\n`);
    const e = await reconcileBeforeCommand(v.host, v.layout, { command: 'backup', runId: 'run0004', hints }).catch((x: unknown) => x);
    assert.ok(e instanceof UserError);
    assert.match(e.message, /is missing: .*no backup until that is resolved: chroma-ferry rollback --target local:\/t/);
    await reconcileBeforeCommand(v.host, v.layout, { command: 'rollback', runId: 'run0004', hints });
  });
});

describe('backup after an interrupted swap', () => {
  withMvWrapperOnPath();

  it('reverses the swap another run left half-way (no NAME), then backs up the data it puts back', async () => {
    const v = await tempVolume();
    try {
      await seed(v);
      for (const d of [v.layout.live, v.layout.old, v.layout.next]) await fs.writeFile(path.join(d, 'chroma.sqlite3'), 'db');
      await injectMvFault(v, 5, 'kill-before'); // the worker dies after live -> old
      await assert.rejects(v.host.run(journaledSwapScript(v.layout, RUN, { live: L, next: N, old: O })));
      await clearMvFault(v);
      assert.equal((await contents(v)).live, undefined, 'NAME is missing');
      const r = await backupNow({ host: v.host, layout: v.layout, policy: {}, volumeFlag: '/vol' });
      assert.ok(r.backup.bytes > 0);
      assert.deepEqual(await contents(v), BEFORE, 'the old data is NAME again, the rest where it was');
      assert.equal(await fs.readFile(path.join(v.layout.backups, `${r.backup.name}.data-id`), 'utf8'), `${L}\n`, 'the backup records the data it holds');
    } finally {
      await v.dispose();
    }
  });
});

describe('retention', () => {
  let v: TempVolume;
  beforeEach(async () => { v = await tempVolume(); });
  afterEach(async () => v.dispose());

  it('never prunes the newest backup of the last verified data', async () => {
    await fs.mkdir(v.layout.backups, { recursive: true });
    const names = ['20260101T000000Z', '20260102T000000Z', '20260103T000000Z', '20260104T000000Z'].map((s) => `chroma_db-${s}.tar.gz`);
    const ids = [L, L, N, N];
    for (const [i, n] of names.entries()) {
      await fs.writeFile(path.join(v.layout.backups, n), 'x');
      await fs.writeFile(path.join(v.layout.backups, `${n}.sha256`), `${'0'.repeat(64)}  ${n}\n`);
      await fs.writeFile(path.join(v.layout.backups, `${n}.data-id`), `${ids[i]}\n`);
    }
    await fs.writeFile(verifiedFile(v.layout), `${L}\n`);
    const removed = await applyRetention(v.host, v.layout, names[3]!, { keepCount: 1 });
    assert.deepEqual(removed.map((r) => r.name).sort(), [names[0], names[2]].sort());
    assert.deepEqual((await fs.readdir(v.layout.backups)).filter((f) => f.endsWith('.tar.gz')).sort(), [names[1], names[3]]);
    await assert.rejects(fs.access(path.join(v.layout.backups, `${names[0]}.data-id`)), 'a pruned backup\'s id file goes with it');
  });
});

describe('command hints', () => {
  const argv = ['deploy', '--source=./db', '--target', 'ssh://u@h:22', '--ssh-key', 'k', '--ssh-option', 'A=b', '--ssh-option', 'C=d',
    '--from', 'swap', '--step', '--volume', '/data', '--db-dir', 'my db', '--yes', '--chunk-size', '1MiB'];
  const h = commandHints(argv, ['--yes', '--json', '--step', '--plan']);

  it('deploy --from: the same command, another step; rollback and unlock: the flags that reach the same volume', () => {
    assert.equal(h.deployFrom('restart'),
      "chroma-ferry deploy --source ./db --target ssh://u@h:22 --ssh-key k --ssh-option A=b --ssh-option C=d --volume /data --db-dir 'my db' --yes --chunk-size 1MiB --from restart");
    assert.equal(h.rollback(), "chroma-ferry rollback --target ssh://u@h:22 --ssh-key k --ssh-option A=b --ssh-option C=d --volume /data --db-dir 'my db' --yes");
    assert.equal(h.rollback(['--backup', 'latest']), "chroma-ferry rollback --target ssh://u@h:22 --ssh-key k --ssh-option A=b --ssh-option C=d --volume /data --db-dir 'my db' --yes --backup latest");
    assert.equal(h.unlock(), 'chroma-ferry unlock --target ssh://u@h:22 --ssh-key k --ssh-option A=b --ssh-option C=d --volume /data --yes');
  });

  it('without a command line (in-process): says which flags to repeat', () => {
    assert.match(commandHints(undefined).deployFrom('swap'), /^chroma-ferry deploy --from swap \(with the flags of that deploy\)$/);
  });
});
