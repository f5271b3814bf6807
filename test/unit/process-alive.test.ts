/**
 * The sh helpers the remote scripts share (lib/remote/process-alive.ts), run by this machine's
 * sh against real processes: `started_as` tells a process started with a mark in its command line
 * from one whose pid was reused (another command line), and says "may be ours" where /proc cannot
 * tell; `wait_gone` returns once the process is gone and reports one that still runs.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { STARTED_AS_SH, WAIT_GONE_SH } from '../../lib/remote/process-alive.ts';

/** The helper's exit status, run by sh with ARGS as its positional parameters. */
function sh(code: string, ...args: string[]): number {
  const r = spawnSync('sh', ['-c', code, 'sh', ...args], { encoding: 'utf8' });
  assert.equal(r.error, undefined);
  return r.status!;
}

describe('remote process helpers (sh)', () => {
  const children: ChildProcess[] = [];
  /** A process whose command line holds MARK (sh -c 'sleep 30; :' MARK). */
  const marked = (mark: string) => {
    const c = spawn('sh', ['-c', 'sleep 30; :', mark], { stdio: 'ignore' });
    children.push(c);
    return c.pid!;
  };
  after(() => {
    for (const c of children) c.kill('SIGKILL');
  });

  it('started_as: 0 for the mark in the command line, 1 for another process, 0 where /proc has no such pid (cannot tell)', () => {
    const pid = marked('zq-mark-one');
    assert.equal(sh(`${STARTED_AS_SH}\nstarted_as "$1" zq-mark-one`, String(pid)), 0);
    assert.equal(sh(`${STARTED_AS_SH}\nstarted_as "$1" ferry-extract`, String(pid)), 1, 'a reused pid: another command line');
    assert.equal(sh(`${STARTED_AS_SH}\nstarted_as "$1" zq-mark`, String(process.pid)), 1, 'node runs this test, not a marked sh');
    assert.equal(sh(`${STARTED_AS_SH}\nstarted_as 999999999 zq-mark-one`), 0, 'no /proc entry: cannot tell');
    assert.equal(sh(`${STARTED_AS_SH}\nstarted_as "$1" 'zq-mark-*'`, String(pid)), 1, 'the mark is matched literally, not as a pattern');
  });

  it('wait_gone: 1 while the process runs past the wait, 0 once it is gone', async () => {
    const pid = marked('zq-mark-two');
    assert.equal(sh(`${WAIT_GONE_SH}\nwait_gone "$1" 0`, String(pid)), 1, 'still running');
    const child = children.at(-1)!;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    assert.equal(sh(`${WAIT_GONE_SH}\nwait_gone "$1" 5`, String(pid)), 0);
  });
});
