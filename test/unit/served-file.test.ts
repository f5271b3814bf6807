/**
 * Who holds a file open (lib/volume/served-file.ts): the probe's output parsed, and the real
 * script under a LocalHost against real processes: a child `sleep` started with the file on its
 * fd 3 holds it from the moment it is spawned, so the probe that follows sees it (no timing).
 * As another user (setpriv), without /proc and with /proc's hidepid (unshare -m), the probe says
 * it cannot tell instead of "not held".
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { execa } from 'execa';
import { LocalHost } from '../../lib/hosts/local.ts';
import { shArgv } from '../../lib/remote/shell.ts';
import { parseServedFiles, probeServedFiles, servedFilesScript, whoHoldsFile } from '../../lib/volume/served-file.ts';

const NOBODY = 65534;

describe('parseServedFiles', () => {
  it('maps held=I:PID to the I-th file, once per pid, sorted; absent=I; the rest not held', () => {
    const out = 'absent=2\nheld=1:30\nheld=1:7\nheld=1:30\nheld=3:7\ndenied=0\nuser=root\nuid=0\nsqlite=/v/db/chroma.sqlite3\n';
    assert.deepEqual(parseServedFiles(out, 4), [
      { state: 'held', pids: [7, 30] },
      { state: 'absent', heldSqlite: ['/v/db/chroma.sqlite3'] },
      { state: 'held', pids: [7] },
      { state: 'not-held', heldSqlite: ['/v/db/chroma.sqlite3'] },
    ]);
  });

  it('walk=holders-found: every file held (the walk skipped); a file without a holder then is unknown, never "not held"', () => {
    assert.deepEqual(parseServedFiles('held=1:9\nheld=2:4\nheld=1:3\nwalk=holders-found\n', 2), [{ state: 'held', pids: [3, 9] }, { state: 'held', pids: [4] }]);
    assert.deepEqual(parseServedFiles('held=1:9\nwalk=holders-found\n', 2)[1], { state: 'unknown', why: 'the probe of /proc on the remote did not finish' });
    assert.deepEqual(parseServedFiles('absent=2\nheld=1:9\nwalk=holders-found\n', 2), [{ state: 'held', pids: [9] }, { state: 'absent', heldSqlite: [] }], 'a file that does not exist needs no walk');
  });

  it('unknown=WHY answers for every file', () => {
    assert.deepEqual(parseServedFiles('unknown=/proc is not mounted on the remote (no /proc/self/fd)\n', 2), [
      { state: 'unknown', why: '/proc is not mounted on the remote (no /proc/self/fd)' },
      { state: 'unknown', why: '/proc is not mounted on the remote (no /proc/self/fd)' },
    ]);
  });

  it('a walk that did not finish (no denied= line) is unknown, never "not held"', () => {
    assert.deepEqual(parseServedFiles('held=1:5\n', 1), [{ state: 'unknown', why: 'the probe of /proc on the remote did not finish' }]);
  });

  it('keeps only lines naming a chroma.sqlite3, sorted and deduplicated, control characters shown as ?', () => {
    const out = 'denied=0\nuid=0\nsqlite=/b/chroma.sqlite3\nsqlite=/a/chroma.sqlite3 (deleted)\nsqlite=/b/chroma.sqlite3\n' +
      'sqlite=/x/\u001b[2Jchroma/chroma.sqlite3\nsqlite=/half-of-a\nsqlite=/etc/passwd\n';
    assert.deepEqual(parseServedFiles(out, 1), [{
      state: 'not-held', heldSqlite: ['/a/chroma.sqlite3 (deleted)', '/b/chroma.sqlite3', '/x/?[2Jchroma/chroma.sqlite3'],
    }]);
  });

  it('processes it may not read: not held only for root that sees another chroma.sqlite3 held; else unknown, saying who and which', () => {
    const denied = 'denied=2\ndenied_pid=1 init\ndenied_pid=9 \u001bx\nuser=root\nuid=0\n';
    assert.deepEqual(parseServedFiles(`${denied}sqlite=/srv/other/chroma.sqlite3\n`, 1), [{ state: 'not-held', heldSqlite: ['/srv/other/chroma.sqlite3'] }]);
    assert.deepEqual(parseServedFiles(denied, 1), [{
      state: 'unknown', why: 'root may not read the open files of 2 processes in /proc (pid 1 init, pid 9 ?x), and no process it can read holds a chroma.sqlite3 open',
    }]);
    const other = 'denied=40\ndenied_pid=1 init\nuser=deploy\nuid=1000\nsqlite=/srv/other/chroma.sqlite3\n';
    assert.deepEqual(parseServedFiles(other, 1), [{
      state: 'unknown', why: "deploy may not read the open files of 40 processes in /proc (pid 1 init, ...); the server may be one of them: run as root or as the server's user",
    }]);
    assert.deepEqual(parseServedFiles(`held=1:4\n${other}`, 1), [{ state: 'held', pids: [4] }], 'a holder it can read is enough');
  });
});

/** A `sleep` holding `file` open read-only on its fd 3 (open from its spawn on: no wait needed). */
function holder(file: string, o: { uid?: number; gid?: number } = {}): ChildProcess {
  const fd = fs.openSync(file, 'r');
  try {
    const child = spawn('sleep', ['600'], { stdio: ['ignore', 'ignore', 'ignore', fd], uid: o.uid, gid: o.gid });
    assert.ok(child.pid, 'sleep started');
    return child;
  } finally {
    fs.closeSync(fd); // the test process itself holds nothing
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
}

describe('the probe on this machine (LocalHost, real processes)', () => {
  let dir: string;
  const children: ChildProcess[] = [];
  const host = new LocalHost('/');
  const isRoot = process.getuid?.() === 0;
  const file = async (name: string) => {
    const p = path.join(dir, name);
    await fsp.mkdir(path.dirname(p), { recursive: true, mode: 0o755 });
    await fsp.writeFile(p, `${name}\n`, { mode: 0o644 });
    return p;
  };
  before(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ferry-served-'));
    await fsp.chmod(dir, 0o755); // readable by the other user of the setpriv tests
    // A chroma.sqlite3 held throughout: root then says "not held" even where a few processes
    // refuse it their open files (a sandbox's pid 1), whatever else runs on this machine.
    children.push(holder(await file('keeper/chroma.sqlite3')));
  });
  after(async () => {
    for (const c of children) await stop(c);
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('names the process holding the file (same inode), and tells a file nobody holds from one that does not exist', async () => {
    const served = await file("served db/it's $(here)/chroma.sqlite3");
    const other = await file('idle/chroma.sqlite3');
    const child = holder(served);
    children.push(child);
    const [a, b, c] = await probeServedFiles(host, [served, other, path.join(dir, 'missing', 'chroma.sqlite3')]);
    assert.deepEqual(a, { state: 'held', pids: [child.pid!] });
    assert.equal(b!.state, 'not-held');
    assert.ok(b!.state === 'not-held' && b!.heldSqlite.includes(served), `the held chroma.sqlite3 is listed: ${JSON.stringify(b)}`);
    assert.equal(c!.state, 'absent');
    assert.deepEqual(await whoHoldsFile(host, path.join(dir, 'missing', 'chroma.sqlite3')).then((r) => r.state), 'not-held', 'whoHoldsFile: a missing file is held by nobody');
    await stop(child);
    assert.equal((await whoHoldsFile(host, served)).state, 'not-held', 'once the process is gone nobody holds it');
  });

  it('compares inodes, not names: a file renamed while open is still held under its new name; a new file under the old name is not', async () => {
    const live = await file('vol/db/chroma.sqlite3');
    const child = holder(live);
    children.push(child);
    await fsp.rename(path.join(dir, 'vol', 'db'), path.join(dir, 'vol', 'db.old'));
    await file('vol/db/chroma.sqlite3');
    const [moved, fresh] = await probeServedFiles(host, [path.join(dir, 'vol', 'db.old', 'chroma.sqlite3'), live]);
    assert.deepEqual(moved, { state: 'held', pids: [child.pid!] });
    assert.equal(fresh!.state, 'not-held');
    await stop(child);
  });

  it('a holder of each file that exists, under its own base name, answers before the walk; one holding it by another name (a hard link) is found by the walk', async () => {
    const served = await file('quick/chroma.sqlite3');
    const linked = await file('linked/chroma.sqlite3');
    await fsp.link(linked, path.join(dir, 'linked', 'other-name.db'));
    const a = holder(served);
    const b = holder(path.join(dir, 'linked', 'other-name.db')); // /proc shows .../other-name.db
    children.push(a, b);
    const quick = (await host.run(servedFilesScript([served]))).stdout;
    assert.match(quick, /^walk=holders-found$/m, 'held under its own name: no walk');
    assert.deepEqual(parseServedFiles(quick, 1), [{ state: 'held', pids: [a.pid!] }]);
    // The deploy's look: the live dir's file held, the volume root's absent (the usual volume).
    const withAbsent = (await host.run(servedFilesScript([served, path.join(dir, 'quick', 'no-such', 'chroma.sqlite3')]))).stdout;
    assert.match(withAbsent, /^walk=holders-found$/m, 'the other file does not exist: still no walk');
    assert.deepEqual(parseServedFiles(withAbsent, 2), [{ state: 'held', pids: [a.pid!] }, { state: 'absent', heldSqlite: [] }]);
    const walked = (await host.run(servedFilesScript([served, linked]))).stdout;
    assert.doesNotMatch(walked, /walk=holders-found/, 'one file not held under its own name: the walk decides');
    assert.deepEqual(parseServedFiles(walked, 2), [{ state: 'held', pids: [a.pid!] }, { state: 'held', pids: [b.pid!] }]);
    await stop(a);
    await stop(b);
  });

  const asOther = async (files: string[]) => {
    const r = await execa('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', ...shArgv(servedFilesScript(files))], { reject: false });
    assert.equal(r.exitCode, 0, r.stderr);
    return parseServedFiles(r.stdout, files.length);
  };
  const needRoot = (t: TestContext, tool: string) => {
    if (!isRoot || !spawnSync('sh', ['-c', `command -v ${tool}`]).stdout.length) t.skip(`needs root and ${tool}`);
    return isRoot;
  };

  it("as another user: its own process's file is held; root's is unknown (it may not read root's open files), never \"not held\"", async (t) => {
    if (!needRoot(t, 'setpriv')) return;
    const mine = await file('nobody/chroma.sqlite3');
    const roots = await file('root/chroma.sqlite3');
    const n = holder(mine, { uid: NOBODY, gid: NOBODY });
    const r = holder(roots);
    children.push(n, r);
    const [a, b] = await asOther([mine, roots]);
    assert.deepEqual(a, { state: 'held', pids: [n.pid!] });
    assert.equal(b!.state, 'unknown');
    assert.match(b!.state === 'unknown' ? b!.why : '', /^nobody may not read the open files of \d+ process(es)? in \/proc \(pid \d+.*; the server may be one of them: run as root or as the server's user$/);
    await stop(n);
    await stop(r);
  });

  it('without /proc, or with /proc hiding other users\' processes (hidepid), it says so', async (t) => {
    if (!needRoot(t, 'unshare')) return;
    const f = await file('noproc/chroma.sqlite3');
    const script = servedFilesScript([f]);
    const noProc = await execa('unshare', ['-m', 'sh', '-c', 'umount -l /proc && exec "$@"', 'sh', ...shArgv(script)], { reject: false });
    assert.equal(noProc.exitCode, 0, noProc.stderr);
    assert.deepEqual(parseServedFiles(noProc.stdout, 1), [{ state: 'unknown', why: '/proc is not mounted on the remote (no /proc/self/fd)' }]);
    const hidden = await execa('unshare', ['-m', 'sh', '-c', `mount -t proc -o hidepid=2 proc /proc && exec setpriv --reuid=${NOBODY} --regid=${NOBODY} --clear-groups "$@"`, 'sh', ...shArgv(script)], { reject: false });
    assert.equal(hidden.exitCode, 0, hidden.stderr);
    assert.deepEqual(parseServedFiles(hidden.stdout, 1), [{ state: 'unknown', why: "/proc is mounted with hidepid: other users' processes are hidden from nobody" }]);
  });
});
