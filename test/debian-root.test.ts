/**
 * The far side's userland as users have it: real Debian root file systems (debootstrap minbase,
 * test/helpers/debian-root.ts) for the stock Chroma image and a Python app image, reached through
 * a chrooted sshd and a fake `fly` whose `-C` commands run through chroot.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { execa } from 'execa';
import { shQuote } from '../lib/remote/shell.ts';
import { parseDeb822Sources, parseOneLineSources, pickDebianMirror, debianMirror } from './helpers/apt-sources.ts';
import { CACHE_DIR, MARKER, checkProfile, debianRoot, isComplete, mountsUnder, removeLeftovers, type DebianRoot, type RootVolume } from './helpers/debian-root.ts';
import { APP, FAKE, MACHINE, makeFakeFly, type FakeFly } from './helpers/fake-fly.ts';
import { startSshd, type TestSshd } from './helpers/sshd.ts';

describe("apt's sources name the mirror", () => {
  it('one-line and deb822 files: the Debian archive with a release suite, not security, updates or disabled ones', () => {
    const list = parseOneLineSources([
      '# deb http://commented.example/debian sid main',
      'deb http://security.example/debian-security bookworm-security main',
      'deb-src http://src.example/debian bookworm main',
      'deb [arch=amd64 signed-by=/k.gpg] https://m1.example/debian/ bookworm-updates main',
      'deb https://packages.example.com/apt cloud-sdk-bookworm main',
    ].join('\n'), 'a.list');
    assert.equal(list.length, 4);
    assert.equal(pickDebianMirror(list), undefined, 'no release suite of a /debian archive in there');

    const deb822 = parseDeb822Sources([
      'Types: deb',
      'URIs: http://off.example/debian',
      'Suites: trixie',
      'Enabled: no',
      '',
      'Types: deb deb-src',
      '# a comment inside',
      'URIs: http://m2.example/mirror/debian',
      'Suites: bookworm-updates',
      ' bookworm',
      'Components: main',
      '',
      'Types: deb',
      'URIs: http://m3.example/debian-security',
      'Suites: bookworm-security',
    ].join('\n'), 'b.sources');
    assert.deepEqual(deb822.map((s) => s.uris[0]), ['http://m2.example/mirror/debian', 'http://m3.example/debian-security']);
    assert.deepEqual(pickDebianMirror([...list, ...deb822]), { uri: 'http://m2.example/mirror/debian', suite: 'bookworm', file: 'b.sources' });
  });

  it("this machine's apt sources give one (what .ci/run and the Debian roots rely on)", () => {
    const m = debianMirror();
    assert.match(m.uri, /^https?:\/\/[^/]+.*\/debian$/);
    assert.match(m.suite, /^[a-z]+$/);
  });
});

describe('Debian roots for the far side', () => {
  let stock: DebianRoot | null = null;
  let python: DebianRoot | null = null;
  const unmount: Array<() => Promise<void>> = [];
  before(async () => {
    stock = await debianRoot('stock');
    python = stock && (await debianRoot('python'));
    for (const r of [stock, python]) if (r) unmount.push(await r.mountProc());
  });
  after(async () => {
    for (const u of unmount) await u();
  });
  const need = (t: TestContext, r: DebianRoot | null): r is DebianRoot => {
    if (!r) t.skip('this machine cannot build Debian roots (see the warning above)');
    return !!r;
  };

  it('stock: the image\'s tools (sh bash tar gzip coreutils findutils perl openssl), no curl, wget, python3', async (t) => {
    if (!need(t, stock)) return;
    assert.deepEqual(await checkProfile(stock.path, 'stock'), []);
    // The same, spelled out (checkProfile is the helper's own gate).
    const r = await stock.run('for t in "$@"; do if command -v "$t" >/dev/null; then echo "+$t"; else echo "-$t"; fi; done', ['sh', 'bash', 'tar', 'gzip', 'sha256sum', 'find', 'perl', 'openssl', 'curl', 'wget', 'python3']);
    assert.equal(r.stdout, '+sh\n+bash\n+tar\n+gzip\n+sha256sum\n+find\n+perl\n+openssl\n-curl\n-wget\n-python3\n');
    assert.match((await fs.readFile(path.join(stock.path, 'etc', 'debian_version'), 'utf8')).trim(), /^\d+(\.\d+)?$/);
    assert.ok(stock.cached.startsWith(`${CACHE_DIR}/`), 'cached inside the repository');
    assert.equal(stock.chrootProblem, undefined, 'sshd can chroot into it');
  });

  it('python: python3 (with sqlite3), no curl or wget', async (t) => {
    if (!need(t, python)) return;
    assert.deepEqual(await checkProfile(python.path, 'python'), []);
    const r = await python.run('python3 -c "import sqlite3, sys; print(sys.version_info[0], sqlite3.sqlite_version_info[0])"; command -v curl wget || echo none');
    assert.equal(r.stdout, '3 3\nnone\n', r.stderr);
  });

  it('/proc is mounted inside (the far side can see which process holds a file)', async (t) => {
    if (!need(t, stock)) return;
    const r = await stock.run('exec 9</etc/debian_version; for fd in /proc/$$/fd/*; do readlink "$fd"; done');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.split('\n').includes('/etc/debian_version'), r.stdout);
  });

  it('a real ssh session through the chrooted sshd is inside the root: its files, its missing python3; sftp writes into its volume', async (t) => {
    if (!need(t, stock)) return;
    const sshd = await startSshd({ chrootDirectory: stock.path });
    if (!sshd) return t.skip('openssh-server is not installed');
    const vol = await stock.makeVolume();
    try {
      const ssh = (cmd: string) => execa('ssh', ['-o', 'BatchMode=yes', '-i', sshd.keyFile, '-o', 'IdentitiesOnly=yes', ...sshd.sshOptions.flatMap((o) => ['-o', o]),
        '-p', String(sshd.port), '--', `${sshd.user}@127.0.0.1`, cmd], { reject: false, stdin: 'ignore' });
      const r = await ssh(`cat /${MARKER}; command -v python3 node || echo absent; cat /etc/debian_version`);
      assert.equal(r.exitCode, 0, r.stderr);
      const [marker, absent, version] = r.stdout.split('\n');
      assert.equal(JSON.parse(marker!).profile, 'stock');
      assert.equal(absent, 'absent', 'python3 and node exist on this machine, not in the root');
      assert.equal(version, (await fs.readFile(path.join(stock.path, 'etc', 'debian_version'), 'utf8')).trim());
      assert.equal((await execa('sh', ['-c', 'command -v python3'], { reject: false })).exitCode, 0, 'control: this machine has python3');

      const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-chroot-sftp-'));
      try {
        await fs.writeFile(path.join(tmp, 'a.txt'), 'through sftp\n');
        const put = await execa('sftp', ['-b', '-', '-i', sshd.keyFile, '-o', 'IdentitiesOnly=yes', ...sshd.sshOptions.flatMap((o) => ['-o', o]), '-P', String(sshd.port), `${sshd.user}@127.0.0.1`],
          { input: `put "${path.join(tmp, 'a.txt')}" "${vol.inside}/a.txt"\n`, reject: false });
        assert.equal(put.exitCode, 0, put.stderr);
        assert.equal(await fs.readFile(path.join(vol.onDisk, 'a.txt'), 'utf8'), 'through sftp\n');
      } finally {
        await fs.rm(tmp, { recursive: true, force: true });
      }
    } finally {
      await vol.remove();
      await sshd.stop();
    }
  });

  it('the fake fly runs -C inside the root and sftp puts into it; the restart hook stays on this machine', async (t) => {
    if (!need(t, python)) return;
    const vol: RootVolume = await python.makeVolume();
    let fly: FakeFly | undefined;
    try {
      fly = await makeFakeFly({ port: 1, restartCmd: 'true' }, { chrootRoot: python.path });
      const env = { ...process.env, ...fly.env };
      const r = await execa(FAKE, ['ssh', 'console', '-a', APP, '-q', '-C', `sh -c 'cat /${MARKER}; command -v python3; ls "$1"' ferry '${vol.inside}'`], { env, reject: false });
      assert.equal(r.exitCode, 0, r.stderr);
      const [marker, py] = r.stdout.split('\n');
      assert.equal(JSON.parse(marker!).profile, 'python');
      assert.equal(py, '/usr/bin/python3');
      const src = path.join(fly.dir, 'chunk');
      await fs.writeFile(src, 'chunk bytes');
      const put = await execa(FAKE, ['sftp', 'put', '-a', APP, src, `${vol.inside}/chunk`], { env, reject: false });
      assert.equal(put.exitCode, 0, put.stderr);
      assert.equal(await fs.readFile(path.join(vol.onDisk, 'chunk'), 'utf8'), 'chunk bytes');
      const back = await execa(FAKE, ['ssh', 'console', '-a', APP, '-q', '-C', `sh -c 'sha256sum < "$1"' ferry '${vol.inside}/chunk'`], { env, reject: false });
      assert.match(back.stdout, /^[0-9a-f]{64} /);

      // `fly machine restart` runs its hook here, outside the machine's root (fly.dir is not in it).
      const flag = path.join(fly.dir, 'restarted');
      await fly.patch((s) => { s.restartHook = `echo restarted > ${shQuote(flag)}`; });
      const restart = await execa(FAKE, ['machine', 'restart', MACHINE, '-a', APP], { env, reject: false });
      assert.equal(restart.exitCode, 0, restart.stderr);
      assert.equal(await fs.readFile(flag, 'utf8'), 'restarted\n');
    } finally {
      await vol.remove();
      if (fly) await fs.rm(fly.dir, { recursive: true, force: true });
    }
  });

  it('a killed build is redone: leftovers of dead builds are unmounted and removed, a root without its marker is not used', async (t) => {
    if (!need(t, stock)) return;
    const dead = 2 ** 22 + 12345; // above pid_max's default: no such process
    const partial = path.join(CACHE_DIR, `stock-test.partial-${dead}`);
    await fs.mkdir(path.join(partial, 'proc'), { recursive: true });
    await execa('mount', ['-t', 'proc', 'proc', path.join(partial, 'proc')]);
    assert.deepEqual(mountsUnder(partial), [path.join(partial, 'proc')]);
    await removeLeftovers();
    assert.deepEqual(mountsUnder(partial), []);
    await assert.rejects(fs.access(partial));

    // A root is used only with its completion marker (written last, before the rename into place).
    const copy = path.join(CACHE_DIR, `stock-test.partial-${dead}`);
    await fs.mkdir(copy);
    try {
      assert.equal(isComplete(copy, 'stock', stock.suite), false, 'no marker');
      await fs.writeFile(path.join(copy, MARKER), JSON.stringify({ profile: 'stock', suite: stock.suite, include: ['ca-certificates', 'curl'] }));
      assert.equal(isComplete(copy, 'stock', stock.suite), false, 'built with other packages');
      await fs.copyFile(path.join(stock.path, MARKER), path.join(copy, MARKER));
      assert.equal(isComplete(copy, 'stock', stock.suite), true);
      assert.equal(isComplete(copy, 'python', stock.suite), false, 'another profile');
    } finally {
      await removeLeftovers();
    }
    await assert.rejects(fs.access(copy));
  });
});
