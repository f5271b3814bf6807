/**
 * An app that embeds Chroma (PersistentClient on VOLUME/NAME) as the far side: no Chroma HTTP API,
 * its own /health, restarted by --restart-cmd. The app runs inside a Debian root (python app on the
 * `python` profile, a perl one on `stock`), reached over a chrooted sshd; `--app-health-url` proves
 * it answers, holds the NEW chroma.sqlite3 open (by inode, through /proc) and, where python3 can
 * read SQLite, that the counts read there equal the deploy's manifest.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { before, describe, it, type TestContext } from 'node:test';
import { shQuote } from '../lib/remote/shell.ts';
import { sampleDbCopy, OLD_SPEC, REPO, runCli, SOURCE_SPEC } from './helpers/deploy-env.ts';
import { APP, makeFakeFly, type FakeFly } from './helpers/fake-fly.ts';
import { type DebianRoot, type RootVolume } from './helpers/debian-root.ts';
import { installEmbeddedApp, type EmbeddedApp } from './helpers/embedded-app.ts';
import { chrootedFarSide } from './helpers/far-side.ts';

/** A source db and a volume inside the root whose live dir holds the old data (legacy: 40). */
async function playground(root: DebianRoot): Promise<{ vol: RootVolume; source: string; tmp: string; db: string; live: string; remove(): Promise<void> }> {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-app-src-'));
  const source = path.join(tmp, 'source db');
  await sampleDbCopy(source, SOURCE_SPEC, 11);
  const vol = await root.makeVolume();
  const live = path.join(vol.onDisk, 'chroma_db');
  await sampleDbCopy(live, OLD_SPEC, 3);
  return {
    vol, source, tmp, live, db: `${vol.inside}/chroma_db/chroma.sqlite3`,
    async remove() {
      await vol.remove();
      await fs.rm(tmp, { recursive: true, force: true });
    },
  };
}

const inode = async (file: string) => (await fs.stat(file)).ino;

for (const profile of ['python', 'stock'] as const) describe(`an app that embeds Chroma on the ${profile} profile (--app-health-url)`, () => {
  const far = chrootedFarSide(profile);
  const ready = (t: TestContext): boolean => far.ready(t);
  const targetFlags = (vol: RootVolume) => ['--target', far.sshd!.target, '--volume', vol.inside, '--ssh-key', far.sshd!.keyFile,
    ...far.sshd!.sshOptions.flatMap((o) => ['--ssh-option', o])];

  it(`deployed, the app restarted on the new data, the three checks reported${profile === 'python' ? '; then verify healthy and unhealthy' : ' (counts skipped: no python3)'}`, async (t) => {
    if (!ready(t)) return;
    const p = await playground(far.root!);
    let app: EmbeddedApp | undefined;
    try {
      app = await installEmbeddedApp(far.root!, { db: p.db });
      await app.start();
      const before = await app.pid();
      const r = await runCli(['deploy', '--source', p.source, ...targetFlags(p.vol), '--restart-cmd', app.restartCmd,
        '--app-health-url', app.healthUrl, '--health-timeout', '20s', '--yes', '--json']);
      assert.equal(r.code, 0, r.stderr + r.stdout + await app.log());
      assert.equal(r.json?.verified, true);
      const s = r.json.appServing;
      assert.equal(s.healthy, true);
      assert.equal(s.answered.ok, true);
      assert.equal(s.answered.status, 200);
      assert.equal(s.file, p.db);
      const now = await app.pid();
      assert.notEqual(now, before, 'the app was restarted');
      assert.deepEqual(s.held, { state: 'held', pids: [now] });
      const verifyNote = r.json.steps.find((x: { name: string }) => x.name === 'verify')?.note as string;
      if (profile === 'python') {
        assert.deepEqual(s.counts, { state: 'equal', collections: 2 });
        assert.deepEqual((await app.health())?.collections, ['books', 'laws']);
        assert.match(verifyNote, /counts equal on the remote \(2 collections\)/);
      } else {
        assert.deepEqual(s.counts, { state: 'skipped', why: 'the remote has no python3' });
        assert.ok(r.json.warnings.includes('verify: collection counts on the remote not compared: the remote has no python3'), r.json.warnings.join('\n'));
        assert.match(verifyNote, /counts check skipped \(the remote has no python3\)/);
      }
      assert.ok((await fs.stat(`${p.live}.old`)).isDirectory(), 'the old data kept as .old');

      const appUrl = app.healthUrl;
      const verify = (extra: string[]) => runCli(['verify', '--app-health-url', appUrl, ...targetFlags(p.vol), '--timeout', '5s', ...extra]);
      const jobSummary = path.join(p.tmp, 'step-summary.md');
      const v = await runCli(['verify', '--app-health-url', appUrl, ...targetFlags(p.vol), '--timeout', '5s'], { env: { GITHUB_STEP_SUMMARY: jobSummary } });
      assert.equal(v.code, 0, v.stderr + v.stdout);
      const md = await fs.readFile(jobSummary, 'utf8');
      assert.match(md, /^## ✅ app healthy$/m);
      assert.match(md, new RegExp(`^\\| held \\| ${p.db.replace(/[/.]/g, '\\$&')} is open in pid ${now} \\(this file, by inode\\) \\|$`, 'm'));
      assert.match(v.stdout, /^healthy {2}http:\/\/127\.0\.0\.1:\d+\/health \(app\)$/m);
      assert.match(v.stdout, new RegExp(`^ {2}held: ${p.db.replace(/[/.]/g, '\\$&')} is open in pid ${now} \\(this file, by inode\\)$`, 'm'));
      assert.match(v.stdout, profile === 'python'
        ? /^ {2}counts: read on the remote, equal to the manifest \(2 collections\)$/m
        : /^ {2}counts: skipped \(the remote has no python3\)$/m);
      if (profile !== 'python') return;

      // Counts that differ from the manifest given: unhealthy, exit 1.
      const wrong = path.join(p.tmp, 'wrong.json');
      await fs.writeFile(wrong, JSON.stringify({ collections: [
        { tenant: 'default_tenant', database: 'default_database', name: 'books', count: 299 },
        { tenant: 'default_tenant', database: 'default_database', name: 'laws', count: 150 }] }));
      const bad = await verify(['--manifest', wrong, '--json']);
      assert.equal(bad.code, 1, bad.stderr + bad.stdout);
      assert.deepEqual(bad.json?.counts, { state: 'different', mismatches: ['default_tenant/default_database/books: 300 records, expected 299'] });

      // The live dir replaced behind the app's back (no restart): it still holds the old file.
      const stale = `${p.live}.stale-copy`;
      await fs.cp(p.live, stale, { recursive: true });
      await fs.rename(p.live, `${p.live}.replaced`);
      await fs.rename(stale, p.live);
      const notHeld = await verify(['--json']);
      assert.equal(notHeld.code, 1, notHeld.stderr + notHeld.stdout);
      assert.equal(notHeld.json?.held.state, 'not-held');
      assert.ok(notHeld.json.held.heldSqlite.includes(`${p.vol.inside}/chroma_db.replaced/chroma.sqlite3`), JSON.stringify(notHeld.json.held));
      assert.match(notHeld.json.problems.join('\n'), /no process on .* holds .*chroma_db\/chroma\.sqlite3 open \(this file, by inode\): the app did not open the deployed data/);

      // The app down: no answer, exit 1, one problem line.
      await app.remove();
      app = undefined;
      const down = await verify([]);
      assert.equal(down.code, 1, down.stderr + down.stdout);
      assert.match(down.stdout, /^UNHEALTHY {2}http:\/\/127\.0\.0\.1:\d+\/health \(app\)$/m);
      assert.match(down.stdout, /problem: the app at http:\/\/127\.0\.0\.1:\d+\/health did not answer 2xx within 5\.00 s \(last: ECONNREFUSED\)/);
    } finally {
      await app?.remove();
      await p.remove();
    }
  });

  if (profile === 'python') {
    it('fly: with examples/fly.embedded-app.toml the app is verified at its check path (/health) through fly proxy; rollback does not take it for a Chroma server', async (t) => {
      if (!ready(t)) return;
      const p = await playground(far.root!);
      let app: EmbeddedApp | undefined;
      let fly: FakeFly | undefined;
      try {
        app = await installEmbeddedApp(far.root!, { db: p.db });
        await app.start();
        // The fake machine: its file system is the root, its port 8080 (the example's internal_port) the app.
        fly = await makeFakeFly({ port: app.port, restartCmd: `chroot ${shQuote(far.root!.path)} sh -c ${shQuote(app.restartCmd)}` }, { chrootRoot: far.root!.path });
        await fly.patch((st) => { st.internalPort = 8080; });
        const r = await runCli(['deploy', '--source', p.source, '--target', `fly:${APP}`, '--config', path.join(REPO, 'examples', 'fly.embedded-app.toml'),
          '--volume', p.vol.inside, '--health-timeout', '20s', '--yes', '--json'], { env: fly.env });
        assert.equal(r.code, 0, r.stderr + r.stdout + await app.log());
        assert.equal(r.json?.verified, true);
        assert.match(r.json.appServing.url, /^http:\/\/127\.0\.0\.1:\d+\/health$/);
        assert.notEqual(r.json.appServing.url, app.healthUrl, 'reached through fly proxy, not directly');
        assert.deepEqual(r.json.appServing.held, { state: 'held', pids: [await app.pid()] });
        assert.deepEqual(r.json.appServing.counts, { state: 'equal', collections: 2 });
        const calls = await fly.calls();
        assert.ok(calls.some((c) => c[0] === 'proxy' && c[1] === '0:8080'), JSON.stringify(calls.filter((c) => c[0] === 'proxy')));
        assert.ok(calls.some((c) => c[0] === 'machine' && c[1] === 'restart'));
        assert.deepEqual((await app.health())?.collections, ['books', 'laws']);

        // rollback has no app check: it restores and restarts, says the data was not checked, and
        // does not take the app for a Chroma server; verify --app-health-url then checks it.
        const flyFlags = ['--target', `fly:${APP}`, '--config', path.join(REPO, 'examples', 'fly.embedded-app.toml'), '--volume', p.vol.inside];
        const rb = await runCli(['rollback', ...flyFlags, '--health-timeout', '20s', '--yes', '--json'], { env: fly.env });
        assert.equal(rb.code, 0, rb.stderr + rb.stdout);
        assert.ok(rb.json.warnings.some((w: string) => /not checked on a running server/.test(w)), rb.json.warnings.join('\n'));
        assert.deepEqual((await app.health())?.collections, ['legacy']);
        const v = await runCli(['verify', '--app-health-url', app.healthUrl, ...flyFlags, '--timeout', '10s', '--json'], { env: fly.env });
        assert.equal(v.code, 0, v.stderr + v.stdout);
        assert.deepEqual(v.json.held, { state: 'held', pids: [await app.pid()] });
      } finally {
        await app?.remove();
        if (fly) await fs.rm(fly.dir, { recursive: true, force: true });
        await p.remove();
      }
    });

    it('data the app refuses to open: verify fails, rolled back, the app serves the old data again (the old file, by inode)', async (t) => {
      if (!ready(t)) return;
      const p = await playground(far.root!);
      let app: EmbeddedApp | undefined;
      try {
        // The app needs its collection `legacy`: the new data (books, laws) stops it at start.
        app = await installEmbeddedApp(far.root!, { db: p.db, requireCollection: 'legacy' });
        await app.start();
        const oldInode = await inode(path.join(p.live, 'chroma.sqlite3'));
        const r = await runCli(['deploy', '--source', p.source, ...targetFlags(p.vol), '--restart-cmd', app.restartCmd,
          '--app-health-url', app.healthUrl, '--health-timeout', '6s', '--yes', '--json']);
        assert.equal(r.code, 1, r.stderr + r.stdout);
        assert.equal(r.json?.verified, false);
        assert.equal(r.json.rolledBack, true);
        assert.match(r.json.error, /the restarted app does not serve the deployed data: the app at http:\/\/127\.0\.0\.1:\d+\/health did not answer 2xx within 6\.00 s/);
        assert.equal(r.json.appServing.answered.ok, false);
        assert.ok(r.json.rollback.every((u: { ok: boolean }) => u.ok), JSON.stringify(r.json.rollback));
        assert.match(await app.log(), /has no collection 'legacy'/);
        // Old data live and served by a restarted app that holds the old file.
        assert.equal(await inode(path.join(p.live, 'chroma.sqlite3')), oldInode);
        assert.deepEqual(await app.health(), { status: 200, collections: ['legacy'] });
        const v = await runCli(['verify', '--app-health-url', app.healthUrl, ...targetFlags(p.vol), '--timeout', '5s', '--json']);
        assert.equal(v.code, 0, v.stderr + v.stdout);
        assert.deepEqual(v.json?.held, { state: 'held', pids: [await app.pid()] });
        assert.equal(v.json.counts.state, 'skipped', 'a rollback removes the manifest of the failed deploy');
        assert.ok(r.json.failedDir, 'the rejected data kept');
      } finally {
        await app?.remove();
        await p.remove();
      }
    });
  }
});
