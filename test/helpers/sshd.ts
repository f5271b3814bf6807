import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execArgv, execChecked } from '../../lib/hosts/exec.ts';
import { freePort } from '../../lib/chroma/server.ts';
import { chrootProblem } from './debian-root.ts';

/** A throw-away OpenSSH server on 127.0.0.1 for integration tests. */
export interface TestSshd {
  port: number;
  user: string;
  keyFile: string;
  sshOptions: string[];
  /** ssh://user@127.0.0.1:port */
  target: string;
  stop(): Promise<void>;
}

const SSHD_CANDIDATES = ['/usr/sbin/sshd', '/usr/bin/sshd', '/usr/local/sbin/sshd'];
const SFTP_SERVER_CANDIDATES = ['/usr/lib/openssh/sftp-server', '/usr/libexec/openssh/sftp-server', '/usr/lib/ssh/sftp-server', '/usr/libexec/sftp-server'];

function findFirst(paths: string[]): string | undefined {
  return paths.find((p) => fs.existsSync(p));
}

async function portAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The pids whose parent is `ppid` (from /proc; none where there is no /proc). */
function childPids(ppid: number): number[] {
  const out: number[] = [];
  let entries: string[] = [];
  try { entries = fs.readdirSync('/proc'); } catch { return out; }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid) out.push(Number(e));
    } catch { /* gone meanwhile */ }
  }
  return out;
}

export interface StartSshdOptions {
  /**
   * Chroot every session into this directory (sshd's `ChrootDirectory`; sftp is then sshd's
   * `internal-sftp`). It and every parent must be root-owned and not group/world-writable, and it
   * must hold the login shell and /dev/null (a Debian root from test/helpers/debian-root.ts does).
   */
  chrootDirectory?: string;
  /** Extra sshd_config lines, e.g. `SetEnv PATH=...` to put a wrapper first on the sessions' PATH. */
  extraConfig?: string[];
}

/**
 * Start sshd on a free high port with fresh keys (plus `extraConfig` lines, e.g. `SetEnv PATH=...`
 * to put a wrapper first on the sessions' PATH). Without openssh-server: throws in CI
 * (`CI=true`), otherwise warns loudly on stderr and returns null (the tests skip).
 */
export async function startSshd(o: StartSshdOptions = {}): Promise<TestSshd | null> {
  const sshd = findFirst(SSHD_CANDIDATES);
  if (!sshd) {
    const msg = 'openssh-server is not installed: .ci/run must apt-get install it';
    if (process.env.CI === 'true') throw new Error(msg);
    process.stderr.write(`\n${'!'.repeat(78)}\n!!! WARNING: ${msg}.\n!!! The ssh integration tests are SKIPPED on this machine.\n${'!'.repeat(78)}\n\n`);
    return null;
  }

  if (o.chrootDirectory) {
    const problem = chrootProblem(o.chrootDirectory);
    if (problem) throw new Error(`sshd refuses ChrootDirectory ${o.chrootDirectory}: ${problem}`);
    if (!fs.existsSync(path.join(o.chrootDirectory, 'dev', 'null'))) throw new Error(`ChrootDirectory ${o.chrootDirectory} has no /dev/null`);
  }

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-sshd-'));
  const hostKey = path.join(dir, 'host_ed25519');
  const keyFile = path.join(dir, 'client_ed25519');
  const authorizedKeys = path.join(dir, 'authorized_keys');
  const config = path.join(dir, 'sshd_config');
  const user = os.userInfo().username;

  for (const f of [hostKey, keyFile]) {
    await execChecked(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'ferry-test', '-f', f], { what: 'ssh-keygen' });
  }
  fs.copyFileSync(`${keyFile}.pub`, authorizedKeys);
  fs.chmodSync(authorizedKeys, 0o600);
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // privilege separation directory

  const sftp = o.chrootDirectory ? 'internal-sftp' : (findFirst(SFTP_SERVER_CANDIDATES) ?? 'internal-sftp');
  const port = await freePort();
  fs.writeFileSync(config, [
    'ListenAddress 127.0.0.1',
    `Port ${port}`,
    `HostKey ${hostKey}`,
    `AuthorizedKeysFile ${authorizedKeys}`,
    `PidFile ${path.join(dir, 'sshd.pid')}`,
    'PermitRootLogin yes',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'StrictModes no',
    'UsePAM no',
    `Subsystem sftp ${sftp}`,
    ...(o.chrootDirectory ? [`ChrootDirectory "${o.chrootDirectory}"`] : []),
    'LogLevel ERROR',
    ...(o.extraConfig ?? []),
    '',
  ].join('\n'));

  let log = '';
  const child: ChildProcess = spawn(sshd, ['-D', '-e', '-f', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (b: Buffer) => { log += b.toString(); });
  child.stderr?.on('data', (b: Buffer) => { log += b.toString(); });
  const killer = () => { try { child.kill('SIGKILL'); } catch { /* gone */ } };
  process.on('exit', killer);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });

  const sshOptions = ['StrictHostKeyChecking=no', 'UserKnownHostsFile=/dev/null', 'LogLevel=ERROR'];
  const stop = async () => {
    process.off('exit', killer);
    if (child.exitCode === null && child.signalCode === null) {
      // Its sessions first: one kept open by a client that is gone (the ControlPersist master of a
      // killed CLI) would otherwise outlive the listener, holding its log pipe and this process.
      for (const pid of childPids(child.pid!)) {
        try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
      }
      child.kill('SIGTERM');
      const t = setTimeout(killer, 5000);
      await exited;
      clearTimeout(t);
    }
    child.stdout?.destroy();
    child.stderr?.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  };

  const fail = async (why: string): Promise<never> => {
    const tail = log.trim();
    await stop();
    throw new Error(`test sshd on 127.0.0.1:${port}: ${why}${tail ? `\n${tail}` : ''}`);
  };

  const deadline = Date.now() + 15_000;
  while (!(await portAccepts(port))) {
    if (child.exitCode !== null || child.signalCode !== null) return fail(`sshd exited (${child.exitCode ?? child.signalCode})`);
    if (Date.now() > deadline) return fail('port never accepted connections');
    await sleep(100);
  }
  let last = '';
  for (;;) {
    const r = await execArgv(['ssh', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5', '-i', keyFile, '-o', 'IdentitiesOnly=yes',
      ...sshOptions.flatMap((o) => ['-o', o]), '-p', String(port), '--', `${user}@127.0.0.1`, 'true'], { what: 'ssh probe' });
    if (r.exitCode === 0) break;
    last = r.stderr.trim();
    if (Date.now() > deadline) return fail(`ssh login does not work: ${last}`);
    await sleep(200);
  }

  return { port, user, keyFile, sshOptions, target: `ssh://${user}@127.0.0.1:${port}`, stop };
}
