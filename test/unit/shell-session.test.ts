/**
 * The long-lived shell protocol (lib/hosts/shell-session.ts) with a local `sh -s` as transport:
 * exact output bytes, exit statuses, stderr kept apart, no reading of the command stream, the
 * session ending mid-command, cancellation, and the pool's reuse. SshHost runs the same over ssh.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { execa } from 'execa';
import { SessionLost, ShellSession, ShellSessionPool } from '../../lib/hosts/shell-session.ts';
import { remoteScript, renderShCommand } from '../../lib/remote/shell.ts';

const line = (code: string, args: string[] = []) => renderShCommand(remoteScript('t', code, args));

describe('a long-lived shell session', () => {
  const s = new ShellSession(['sh', '-s']);
  after(() => s.close());

  test('arguments arrive exactly, output comes back byte for byte, with or without a final newline', async () => {
    const args = ['two words', "it's", '$(echo pwned)', 'new\nline', '', '\\', 'ünïcødé ✓', '\nferry-x 0\n'];
    const r = await s.run(line(`for a in "$@"; do printf '<%s>' "$a"; done`, args), 'echo');
    assert.equal(r.stdout, args.map((a) => `<${a}>`).join(''));
    assert.equal(r.exitCode, 0);
    const nl = await s.run(line(`printf 'a\\n\\n'`), 'nl');
    assert.equal(nl.stdout, 'a\n\n');
    const none = await s.run(line('true'), 'none');
    assert.deepEqual(none, { stdout: '', stderr: '', exitCode: 0 });
  });

  test('exit status and stderr are the command\'s own, apart from stdout', async () => {
    const r = await s.run(line(`echo out; echo err >&2; printf 'no newline' >&2; exit 7`), 'fail');
    assert.deepEqual(r, { stdout: 'out\n', stderr: 'err\nno newline', exitCode: 7 });
    const next = await s.run(line('echo still here'), 'next');
    assert.equal(next.stdout, 'still here\n');
  });

  test('a command reads /dev/null, never the command stream', async () => {
    const r = await s.run(line(`if read -r x; then echo "read: $x"; else echo eof; fi`), 'read');
    assert.equal(r.stdout, 'eof\n');
    assert.equal((await s.run(line('echo after'), 'after')).stdout, 'after\n');
  });

  test('large output (4 MiB) arrives whole', async () => {
    const r = await s.run(line('head -c 4194304 /dev/zero | tr "\\0" x'), 'big');
    assert.equal(r.stdout.length, 4 * 1024 * 1024);
    assert.ok(/^x+$/.test(r.stdout));
  });

  test('one command at a time', async () => {
    const first = s.run(line('sleep 0.2; echo 1'), 'first');
    await assert.rejects(s.run(line('echo 2'), 'second'), /busy/);
    assert.equal((await first).stdout, '1\n');
  });
});

describe('the session ending or cancelled mid-command', () => {
  test('the transport dying rejects the running command with SessionLost and refuses later ones', async () => {
    const s = new ShellSession(['sh', '-s']);
    await s.run(line('true'), 'warm');
    // The session's own shell killed from inside: what a dropped connection looks like.
    await assert.rejects(s.run(line('echo partial; echo gone >&2; kill -9 $PPID'), 'dies'), (e: unknown) => {
      assert.ok(e instanceof SessionLost);
      assert.match(e.stderr, /gone/);
      return true;
    });
    assert.equal(s.alive, false);
    await assert.rejects(s.run(line('true'), 'later'), SessionLost);
  });

  test('a process left behind holding the pipes does not keep the command waiting', { timeout: 30_000 }, async () => {
    const s = new ShellSession(['sh', '-s']);
    await assert.rejects(s.run(line('kill -9 $PPID; sleep 60'), 'dies'), SessionLost);
    assert.equal(s.alive, false);
  });

  test('a cancelled command rejects at once and the session is ended', async () => {
    const s = new ShellSession(['sh', '-s']);
    const ac = new AbortController();
    const r = s.run(line('sleep 30'), 'slow', ac.signal);
    setImmediate(() => ac.abort());
    await assert.rejects(r, /slow: cancelled/);
    await s.close(100);
    assert.equal(s.alive, false);
  });
});

describe('the process hosting sessions', () => {
  test('exits when its work is done although a session was never closed; a running command keeps it alive', async () => {
    const mod = new URL('../../lib/hosts/shell-session.ts', import.meta.url).href;
    const code = `
      const { ShellSession } = await import(${JSON.stringify(mod)});
      const s = new ShellSession(['sh', '-s']);
      const r = await s.run("sh -c 'sleep 0.3; echo done'", 'slow');
      process.stdout.write(r.stdout);`;
    const r = await execa(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { timeout: 20_000, reject: false });
    assert.equal(r.timedOut, false, 'the idle session kept the process alive');
    assert.equal(r.stdout, 'done');
    assert.equal(r.exitCode, 0, r.stderr);
  });
});

describe('the pool', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-pool-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('reuses an idle session, opens another while it is busy, and gives none past max', async () => {
    const pool = new ShellSessionPool(['sh', '-s'], 2);
    const pid = async () => (await pool.run(line('echo $PPID'), 'pid'))!.stdout;
    const a = await pid();
    assert.equal(await pid(), a, 'an idle session is reused');
    const gate = path.join(tmp, 'gate');
    const busy = pool.run(line('while [ ! -e "$1" ]; do sleep 0.05; done; echo $PPID', [gate]), 'busy')!;
    const b = await pid();
    assert.notEqual(b, a, 'a second session while the first is busy');
    const third = pool.run(line('while [ ! -e "$1" ]; do sleep 0.05; done', [gate]), 'busy2')!;
    assert.equal(pool.run(line('true'), 'over'), undefined, 'none past max: the caller runs a one-off');
    fs.writeFileSync(gate, '');
    assert.equal((await busy).stdout, a);
    await third;
    await pool.closeAll();
  });

  test('discardAll ends every session; the next command starts a fresh one', async () => {
    const pool = new ShellSessionPool(['sh', '-s'], 2);
    const a = (await pool.run(line('echo $PPID'), 'pid'))!.stdout;
    pool.discardAll();
    const b = (await pool.run(line('echo $PPID'), 'pid'))!.stdout;
    assert.notEqual(b, a);
    await pool.closeAll();
  });
});
