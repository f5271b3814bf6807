/**
 * A session started before its input (lib/hosts/spare-session.ts) with local `sh -c` as the
 * transport: started at once, its input given later in one piece, output and status as a one-off
 * command's, used once, cancellation, and an unused spare never keeping this process alive.
 * SshHost uses it for `sftp -b -` (test/ssh-host.test.ts runs that against a real sshd).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { execa } from 'execa';
import { SpareSession } from '../../lib/hosts/spare-session.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-spare-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('a spare session', () => {
  test('starts at once, then runs on the input given later: its output, stderr and status', async () => {
    const started = path.join(tmp, 'started');
    const s = new SpareSession(['sh', '-c', 'touch "$1"; cat; echo "to stderr" >&2; exit 3', 'sh', started]);
    await until(() => fs.existsSync(started), 'the session to start before any input');
    assert.equal(s.ready, true);
    const r = await s.send('put "a" "b"\n', 'put');
    assert.deepEqual(r, { stdout: 'put "a" "b"\n', stderr: 'to stderr\n', exitCode: 3 });
    assert.equal(s.ready, false);
    await assert.rejects(s.send('again\n', 'put'), /used once/);
  });

  test('one that ended on its own is not ready (the caller runs a one-off session instead)', async () => {
    const s = new SpareSession(['sh', '-c', 'exit 0']);
    await until(() => !s.ready, 'the ended session to be seen');
  });

  test('cancelled while it runs: killed, and the send says cancelled', async () => {
    const s = new SpareSession(['sh', '-c', 'cat >/dev/null; exec sleep 30']);
    const ac = new AbortController();
    const t0 = Date.now();
    const sent = s.send('x\n', 'slow put', ac.signal);
    ac.abort();
    await assert.rejects(sent, /slow put: cancelled/);
    assert.ok(Date.now() - t0 < 10_000, 'the session was not killed');
  });

  test('close() ends one never used: it reads end of input', async () => {
    const s = new SpareSession(['sh', '-c', 'cat >/dev/null']);
    await s.close();
    assert.equal(s.ready, false);
  });
});

describe('the process holding a spare', () => {
  test('exits although an unused spare was never closed; a used one keeps it alive until it ends', async () => {
    const mod = new URL('../../lib/hosts/spare-session.ts', import.meta.url).href;
    const code = `
      const { SpareSession } = await import(${JSON.stringify(mod)});
      new SpareSession(['sh', '-c', 'cat >/dev/null']);
      const used = new SpareSession(['sh', '-c', 'cat >/dev/null; sleep 0.3; echo done']);
      used.send('', 'slow').then((r) => process.stdout.write(r.stdout));`;
    const r = await execa(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { timeout: 20_000, reject: false });
    assert.equal(r.timedOut, false, 'the unused spare kept the process alive');
    assert.equal(r.stdout, 'done', 'the used spare did not keep the process alive until its end');
    assert.equal(r.exitCode, 0, r.stderr);
  });
});
