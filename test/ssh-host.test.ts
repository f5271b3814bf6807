import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HostUnreachable, UserError } from '../lib/common/errors.ts';
import { freePort } from '../lib/chroma/server.ts';
import { SshHost } from '../lib/hosts/ssh.ts';
import { remoteScript } from '../lib/remote/shell.ts';
import { startSshd, type TestSshd } from './helpers/sshd.ts';
import { processesShowing } from './helpers/proc-scan.ts';

const sshd = await startSshd();
const skip = sshd ? false : 'openssh-server is not installed (see the warning above)';

describe('SshHost against a real sshd', { skip }, () => {
  const d = sshd as TestSshd;
  let host: SshHost;
  let tmp: string;
  const marker = path.join(os.tmpdir(), `ferry-pwned-${process.pid}`);

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-ssh-test-'));
    host = new SshHost({ user: d.user, host: '127.0.0.1', port: d.port, keyFile: d.keyFile, sshOptions: d.sshOptions });
  });

  after(async () => {
    await host.close();
    await d.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.rmSync(marker, { force: true });
  });

  test('script arguments arrive exactly and are never executed', async () => {
    const args = [
      'two words',
      "it's",
      'say "hi"',
      `$(touch ${marker})`,
      `x; touch ${marker}`,
      `\`touch ${marker}\``,
      `'$(touch ${marker})'`,
      `" $(touch ${marker}) "`,
      '',
      '  leading and trailing  ',
      'new\nline',
      'tab\there',
      '*',
      '$HOME',
      '\\back\\slash',
      '|&<>!#~{}',
      'ünïcødé ✓',
    ];
    const script = remoteScript('echo args', `for a in "$@"; do printf '%s\\0' "$a"; done`, args);
    const r = await host.run(script);
    const back = r.stdout.split('\0');
    assert.equal(back.pop(), '');
    assert.deepEqual(back, args);
    assert.ok(!fs.existsSync(marker), 'an argument was executed');
  });

  test('stdin reaches the script', async () => {
    const r = await host.run(remoteScript('cat', 'cat'), { stdin: 'hello\nworld\n' });
    assert.equal(r.stdout, 'hello\nworld\n');
  });

  test('put lands the exact bytes in a hostile directory name', async () => {
    const dir = path.join(tmp, `dir with spaces 'single' "double" $(touch ${path.basename(marker)}) ; semi`);
    fs.mkdirSync(dir);
    const local = path.join(tmp, `local file 'q' "dq".bin`);
    const bytes = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), crypto.randomBytes(200_000)]);
    fs.writeFileSync(local, bytes);
    const remote = path.join(dir, `data "file" $(x) ; 'y'.bin`);
    await host.put(local, remote);
    assert.deepEqual(fs.readFileSync(remote), bytes);
    assert.deepEqual(fs.readdirSync(dir), [path.basename(remote)]);
    assert.ok(!fs.existsSync(marker) && !fs.existsSync(path.join(os.homedir(), path.basename(marker))), 'a path was executed');
  });

  test('put handles glob characters and backslashes in names', async () => {
    const dir = path.join(tmp, 'glob [a] * ? \\ dir');
    fs.mkdirSync(dir);
    const local = path.join(tmp, 'src [1] *?.bin');
    fs.writeFileSync(local, 'glob bytes');
    const remote = path.join(dir, 'dst [1] *? \\x.bin');
    await host.put(local, remote);
    assert.equal(fs.readFileSync(remote, 'utf8'), 'glob bytes');
  });

  test('put refuses a path with a line break (it would end the sftp batch command)', async () => {
    const local = path.join(tmp, 'nl-src');
    fs.writeFileSync(local, 'x');
    await assert.rejects(host.put(local, path.join(tmp, `a\n!touch ${marker}`)), /line break/);
    assert.ok(!fs.existsSync(marker));
  });

  test('a failing script is a RemoteCommandError with its stderr', async () => {
    await assert.rejects(host.run(remoteScript('fail on purpose', 'echo boom >&2; exit 3')), (e: Error) => {
      assert.equal(e.name, 'RemoteCommandError');
      assert.match(e.message, /fail on purpose on ssh:\/\/.* failed \(exit 3\): boom/);
      return true;
    });
  });

  test('commands without input run one after another in one long-lived remote shell', async () => {
    const shell = async () => (await host.run(remoteScript('parent shell', 'echo $PPID'))).stdout;
    const first = await shell();
    assert.equal(await shell(), first, 'a second session was opened for the second command');
    // Commands with input still get a session of their own.
    const own = (await host.run(remoteScript('parent shell', 'cat >/dev/null; echo $PPID'), { stdin: 'x' })).stdout;
    assert.notEqual(own, first);
  });

  test('a connection dropped mid-command is HostUnreachable; the next command reconnects', async () => {
    // Kills the connection's sshd (the nearest sshd above the command), as a dropped link does.
    const drop = remoteScript('drop the connection', `
      echo dropping >&2
      p=$PPID
      while [ "$p" -gt 1 ]; do
        read -r comm < "/proc/$p/comm"
        case $comm in sshd*) kill -9 "$p"; break ;; esac
        read -r st < "/proc/$p/stat"; st=\${st##*) }; set -- $st; p=$2
      done
      sleep 30`);
    await assert.rejects(host.run(drop), (e: unknown) => {
      assert.ok(e instanceof HostUnreachable, String(e));
      return true;
    });
    assert.equal((await host.run(remoteScript('after', 'echo back'))).stdout, 'back\n');
  });

  test('commands started together wait for the connection, not for the first command to end', async () => {
    const fresh = new SshHost({ user: d.user, host: '127.0.0.1', port: d.port, keyFile: d.keyFile, sshOptions: d.sshOptions });
    try {
      const gate = path.join(tmp, 'gate');
      // The first command ends only once the second has run (or gives up after 10 s, failing).
      const first = fresh.run(remoteScript('wait for the second', 'i=0; while [ ! -e "$1" ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done; [ -e "$1" ] && echo saw', [gate]));
      const second = fresh.run(remoteScript('the second', 'touch "$1"; echo done', [gate]));
      assert.equal((await second).stdout, 'done\n');
      assert.equal((await first).stdout, 'saw\n', 'the second command waited for the first one\'s end');
    } finally {
      await fresh.close();
    }
  });

  test('close ends the shared connection: its master is gone and its control dir removed', async () => {
    const fresh = new SshHost({ user: d.user, host: '127.0.0.1', port: d.port, keyFile: d.keyFile, sshOptions: d.sshOptions });
    const controlDir = (fresh as unknown as { controlDir: string }).controlDir; // this host's own (private) socket dir
    // The master (`ssh -N -f`) and the long-lived shell's session name the socket on their command lines.
    const ofThisHost = () => processesShowing(`ControlPath=${path.join(controlDir, 'cm')}`).filter((p) => p.where === 'cmdline');
    assert.equal((await fresh.run(remoteScript('say hi', 'echo hi', []))).stdout, 'hi\n');
    assert.ok(ofThisHost().length >= 2, `the master and the shell's session run while the host is open: ${JSON.stringify(ofThisHost())}`);
    await fresh.close();
    // `ssh -O exit` has returned: the master ends at once (a zombie shows no command line).
    for (let i = 0; i < 50 && ofThisHost().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(ofThisHost(), [], 'no ssh process of the closed host is left');
    assert.equal(fs.existsSync(controlDir), false);
  });

  test('after warmUpPuts a put goes through the sftp session started ahead, and the next one is started', async () => {
    await host.run(remoteScript('open the connection', 'true'));
    host.warmUpPuts();
    const spare = await waitFor(() => sftpChildren().at(0), 'the spare sftp session to start');
    assert.deepEqual(sftpChildren(), [spare], 'one spare, started before any put');
    const local = path.join(tmp, 'ahead.bin');
    const bytes = crypto.randomBytes(300_000);
    fs.writeFileSync(local, bytes);
    const remoteFile = path.join(tmp, 'ahead-remote.bin');
    await host.put(local, remoteFile);
    assert.ok(fs.readFileSync(remoteFile).equals(bytes), 'the bytes arrived');
    assert.ok(!sftpChildren().includes(spare), 'the put did not use the spare session (it still waits)');
    const next = await waitFor(() => sftpChildren().at(0), 'the next spare to start');
    assert.notEqual(next, spare);

    // Puts started together take one spare each (the next one started by the first): none is left behind.
    const both = await Promise.all(['a', 'b'].map(async (n) => {
      const to = path.join(tmp, `together-${n}.bin`);
      await host.put(local, to);
      return fs.readFileSync(to).equals(bytes);
    }));
    assert.deepEqual(both, [true, true]);
    await waitFor(() => (sftpChildren().length >= 1 ? true : undefined), 'the next spare');
    assert.equal(sftpChildren().length, 1, 'a spare session was left without a put (two puts took the same one)');
  });

  test('a connection that cannot be opened is reported once, not tried again by the waiting command', async () => {
    let accepted = 0;
    const server = net.createServer((sock) => { accepted++; sock.destroy(); }); // closes before the ssh banner
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const dead = new SshHost({ user: d.user, host: '127.0.0.1', port, keyFile: d.keyFile, sshOptions: d.sshOptions });
    try {
      await assert.rejects(dead.run(remoteScript('noop', 'true')), (e: unknown) => {
        assert.ok(e instanceof HostUnreachable, String(e));
        assert.match(e.message, /cannot reach ssh:\/\/.*:\d+ over ssh: kex_exchange_identification/);
        return true;
      });
      assert.equal(accepted, 1, 'the command tried to connect again after the connection failed');
    } finally {
      await dead.close();
      server.close();
    }
  });

  test('an unreachable port is a UserError', async () => {
    const port = await freePort();
    const dead = new SshHost({ user: d.user, host: '127.0.0.1', port, keyFile: d.keyFile, sshOptions: d.sshOptions });
    try {
      await assert.rejects(dead.run(remoteScript('noop', 'true')), (e: unknown) => {
        assert.ok(e instanceof UserError, String(e));
        assert.match(e.message, /cannot reach ssh:\/\/.*:\d+ over ssh/);
        return true;
      });
      const local = path.join(tmp, 'f');
      fs.writeFileSync(local, 'x');
      await assert.rejects(dead.put(local, '/tmp/never'), (e: unknown) => e instanceof UserError);
    } finally {
      await dead.close();
    }
  });
});

/** pids of the sftp processes this test process started (read from /proc: no procps needed). */
function sftpChildren(): number[] {
  const pids: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (comm === 'sftp' && ppid === process.pid) pids.push(Number(e));
    } catch { /* gone meanwhile */ }
  }
  return pids;
}

async function waitFor<T>(probe: () => T | undefined, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
