/**
 * Remote scripts refuse through their exit status: one code per reason (lib/remote/refusals.ts),
 * mapped back to one line. Each refusal is produced by the real script under a LocalHost in a temp
 * volume; `sh -e` on the rendered commands stops at a held lock; a full tmpfs says "volume full".
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RemoteCommandError, UserError } from '../../lib/common/errors.ts';
import { REFUSALS, refusalError, refusalOf, refuseSh, runRefusing } from '../../lib/remote/refusals.ts';
import { withSpaceGuard } from '../../lib/remote/space-guard.ts';
import { REQUIRED_REMOTE_TOOLS, lockScript, probeScript, writeFileScript } from '../../lib/remote/scripts.ts';
import { remoteScript, renderShCommand } from '../../lib/remote/shell.ts';
import { remoteLayout } from '../../lib/remote/layout.ts';
import { archiveDataId, DATA_ID_FILE, liveBeforeId } from '../../lib/volume/data-id.ts';
import { journaledSwapScript } from '../../lib/volume/swap-journal.ts';
import { checkVolume } from '../../lib/volume/check.ts';
import { tryVolumeLock } from '../../lib/volume/lock.ts';
import { rejection, fakeTools, fillUp, mountTmpfs, tempVolume, unmount, which, withEnv, type TempVolume } from './local-volume.ts';

describe('the refusal table', () => {
  it('gives every reason its own status, clear of the scripts\' own codes, shell and signal codes', () => {
    const codes = Object.values(REFUSALS).map((k) => k.code);
    assert.equal(new Set(codes).size, codes.length);
    for (const c of codes) assert.ok(c >= 64 && c < 126, `code ${c}`);
    for (const own of [1, 2, 9, 10, 11, 12, 13, 14, 15, 22]) assert.ok(!codes.includes(own));
  });

  it('maps only a status whose stderr names the same reason (a user command exiting 80 is no refusal)', () => {
    assert.equal(refusalOf(new RemoteCommandError('x', 80, 'boom')), undefined);
    assert.equal(refusalOf(new RemoteCommandError('x', 80, 'ferry_refusal=no-volume\n')), undefined);
    const r = refusalOf(new RemoteCommandError('x', 80, 'noise\nferry_refusal=lock-held\nferry_holder={"user":"ana","host":"h","pid":1,"startedAt":"t"}\n'));
    assert.equal(r?.reason, 'lock-held');
    assert.equal(refusalError(new RemoteCommandError('x', 80, 'ferry_refusal=lock-held\n'), { volume: '/data' })?.message, 'another run holds the deploy lock on /data');
  });

  it('refuseSh prints the reason and details on stderr and exits with the code', async () => {
    const v = await tempVolume();
    try {
      const e = await rejection(v.host.run(remoteScript('t', `x="a b"; ${refuseSh('volume-changed', { what: '"$x"' })}; echo unreachable`)));
      assert.ok(e instanceof RemoteCommandError);
      assert.equal(e.exitCode, REFUSALS['volume-changed'].code);
      assert.equal(refusalOf(e)?.details.what, 'a b');
    } finally {
      await v.dispose();
    }
  });
});

describe('probe and lock refuse through their status', () => {
  let v: TempVolume;
  before(async () => { v = await tempVolume(); });
  after(async () => { await v.dispose(); });

  it('a missing volume: no-volume, with the line the CLI always printed', async () => {
    const gone = { ...v.layout, volume: path.join(v.root, 'nope') };
    const e = await rejection(v.host.run(probeScript(gone)));
    assert.equal((e as RemoteCommandError).exitCode, REFUSALS['no-volume'].code);
    const ue = await rejection(checkVolume(v.host, gone));
    assert.ok(ue instanceof UserError);
    assert.equal(ue.exitCode, 2);
    assert.match(ue.message, /^volume .*\/nope does not exist on local:.*; create it or fix --volume$/);
  });

  it('missing tools: missing-tools, naming them', async () => {
    // A PATH holding only what sh and the probe's own plumbing need: every required tool but mv and wc.
    const bin = path.join(v.root, 'bin-few');
    await fs.mkdir(bin);
    for (const t of new Set(['sh', ...REQUIRED_REMOTE_TOOLS.filter((t) => t !== 'mv' && t !== 'wc'), 'tail'])) await fs.symlink(which(t), path.join(bin, t));
    const ue = await withEnv({ PATH: bin }, () => rejection(checkVolume(v.host, v.layout)));
    assert.ok(ue instanceof UserError);
    assert.equal(ue.message, `${v.host.label} lacks required tools: mv wc; install them on the remote host`);
  });

  it('not enough free space for what the caller needs: volume-full', async () => {
    const ue = await rejection(checkVolume(v.host, v.layout, undefined, 2 ** 60));
    assert.ok(ue instanceof UserError);
    assert.match(ue.message, /^volume full: \d+ MiB free, needed 1099511627776 MiB \(.*\/vol on local:.*\); free space there and run again$/);
  });

  it('a usable volume: the key=value lines the callers read', async () => {
    const probe = await checkVolume(v.host, v.layout);
    assert.equal(probe.get('volume'), 'dir');
    assert.equal(probe.get('writable'), 'yes');
    assert.equal(probe.get('live'), 'absent');
  });

  it('a held lock: lock-held with the holder, and the lock is untouched', async () => {
    assert.deepEqual(await tryVolumeLock(v.host, v.layout, 'run1', 'deploy'), { acquired: true });
    const owner = await fs.readFile(path.join(v.layout.lock, 'owner.json'), 'utf8');
    const second = await tryVolumeLock(v.host, v.layout, 'run2', 'backup');
    assert.equal(second.acquired, false);
    assert.equal(!second.acquired && second.holder.runId, 'run1');
    assert.equal(await fs.readFile(path.join(v.layout.lock, 'owner.json'), 'utf8'), owner);
    const e = await rejection(runRefusing(v.host, lockScript(v.layout, '{}'), { volume: v.layout.volume }));
    assert.ok(e instanceof UserError);
    assert.match(e.message, /^another run holds the deploy lock on .*\/vol \(deploy by .*@.*, pid \d+, since .*\)$/);
  });

  it('sh -e on the rendered commands stops at a held lock: nothing after it runs', async () => {
    const marker = path.join(v.root, 'after-the-lock');
    const plan = path.join(v.root, 'plan.sh');
    await fs.writeFile(plan, [renderShCommand(lockScript(v.layout, '{"runId":"other"}')), `touch ${marker}`, ''].join('\n'));
    const r = spawnSync('sh', ['-e', plan], { encoding: 'utf8' });
    assert.equal(r.status, REFUSALS['lock-held'].code);
    assert.match(r.stderr, /^ferry_refusal=lock-held$/m);
    await assert.rejects(fs.access(marker));
  });
});

describe('writes on a full volume say "volume full"', () => {
  let v: TempVolume;
  let mnt = '';
  let skip: string | undefined;
  before(async () => {
    v = await tempVolume();
    mnt = path.join(v.root, 'small');
    await fs.mkdir(mnt);
    skip = await mountTmpfs(mnt, 1024);
    if (skip && process.env.CI === 'true' && process.getuid?.() === 0) throw new Error(`cannot mount a tmpfs under CI=true as root: ${skip}`);
    if (skip) process.stderr.write(`\n!!! SKIPPING the full-volume tests: ${skip}\n\n`);
  });
  after(async () => {
    if (!skip) unmount(mnt);
    await v.dispose();
  });

  it('a state write on a full tmpfs: one line, status volume-full, no temp file left', async (t) => {
    if (skip) return t.skip(skip);
    await fillUp(mnt);
    const file = path.join(mnt, '.ferry', 'state-x.json');
    const e = await rejection(runRefusing(v.host, writeFileScript(file, JSON.stringify({ a: 'x'.repeat(3000) })), { volume: mnt }));
    assert.ok(e instanceof UserError);
    assert.match(e.message, /^volume full: 0 MiB free, needed 1 MiB \(.*small on local:.*\); free space there and run again$/);
    assert.deepEqual((await fs.readdir(mnt)).filter((f) => f !== 'filler'), []);
    await fs.rm(path.join(mnt, 'filler'));
  });

  it('a write that fails once the space ran out (more than announced) is reported as volume full too', async (t) => {
    if (skip) return t.skip(skip);
    const inner = remoteScript('write a big file', 'set -e; head -c 4194304 /dev/zero > "$1/big"', [mnt]);
    const e = await rejection(runRefusing(v.host, withSpaceGuard(inner, mnt, 1024), { volume: mnt }));
    assert.ok(e instanceof UserError, String(e));
    assert.match(e.message, /^volume full: 0 MiB free, needed 1 MiB/);
    await fs.rm(path.join(mnt, 'big'));
  });

  it('a swap on a full volume refuses before its intent is written, nothing renamed', async (t) => {
    if (skip) return t.skip(skip);
    const l = remoteLayout(mnt, 'db');
    const next = archiveDataId('d'.repeat(64), 'run1');
    await fs.mkdir(l.live);
    await fs.mkdir(l.next);
    await fs.writeFile(path.join(l.next, DATA_ID_FILE), `${next}\n`);
    await fillUp(mnt);
    const e = await rejection(runRefusing(v.host, journaledSwapScript(l, 'run1', { live: liveBeforeId('run1'), next }), { volume: mnt }));
    assert.ok(e instanceof UserError, String(e));
    assert.match(e.message, /^volume full: 0 MiB free, needed 1 MiB/);
    assert.deepEqual((await fs.readdir(mnt)).sort(), ['db', 'db.new', 'filler']);
    assert.deepEqual(await fs.readdir(l.live), [], 'NAME not stamped');
    await fs.rm(path.join(mnt, 'filler'));
  });

  it('a state write on a volume with every inode used (free space left): volume full, no temp file left', async (t) => {
    if (skip) return t.skip(skip);
    const few = path.join(v.root, 'few-inodes');
    await fs.mkdir(few);
    const why = await mountTmpfs(few, 4096, { inodes: 16 });
    if (why) return t.skip(why);
    try {
      await fs.mkdir(path.join(few, '.ferry'));
      for (let i = 0; ; i++) {
        try { await fs.writeFile(path.join(few, `f${i}`), ''); } catch { break; }
      }
      const file = path.join(few, '.ferry', 'state-x.json');
      const e = await rejection(runRefusing(v.host, writeFileScript(file, '{"a":1}'), { volume: few }));
      assert.ok(e instanceof UserError, String(e));
      assert.match(e.message, /^volume full: [1-9]\d* MiB free, needed 1 MiB \(.*few-inodes on local:.*\); free space there and run again$/);
      assert.deepEqual(await fs.readdir(path.join(few, '.ferry')), []);
    } finally {
      unmount(few);
    }
  });

  it('other failures keep their own status when the volume has room', async () => {
    const inner = remoteScript('write to /dev/full', 'printf x > /dev/full || exit 7', []);
    const e = await rejection(v.host.run(withSpaceGuard(inner, v.layout.volume, 1024)));
    assert.equal((e as RemoteCommandError).exitCode, 7);
    assert.equal(refusalOf(e), undefined);
  });

  it('the guard passes the wrapped script\'s arguments and output through', async () => {
    const inner = remoteScript('echo args', 'printf "%s|" "$@"', ['a b', "c'd"]);
    const r = await v.host.run(withSpaceGuard(inner, path.join(v.layout.volume, 'not', 'yet'), 10));
    assert.equal(r.stdout, "a b|c'd|");
  });
});
