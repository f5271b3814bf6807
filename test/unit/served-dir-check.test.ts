/**
 * The deploy preflight's served-dir check (lib/volume/served-dir-check.ts): its verdict on what
 * the probe saw, each refusal's one line, when it does not run at all, and a refusal deferred
 * while the volume needs attention (a lock, an unsettled swap) that is checked again once settled.
 * The probe itself runs against real processes in served-file.test.ts; here a recording host
 * answers it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UserError } from '../../lib/common/errors.ts';
import { remoteLayout } from '../../lib/remote/layout.ts';
import { checkServedDir, judge, type ServedDirRecord } from '../../lib/volume/served-dir-check.ts';
import { RecordingHost } from '../helpers/recording-host.ts';

const host = new RecordingHost({}, { root: '/' });
const layout = remoteLayout('/data', 'chroma_db');
const FILE = '/data/chroma_db/chroma.sqlite3';
const at = { host, layout, serverDown: false };
const refusal = (v: ReturnType<typeof judge>) => {
  assert.ok(v.refusal instanceof UserError, JSON.stringify(v));
  assert.equal(v.refusal.exitCode, 2);
  return v.refusal.message;
};

describe('the served-dir verdict', () => {
  it('held: passed, with the holders', () => {
    assert.deepEqual(judge(at, { state: 'held', pids: [42] }, { state: 'absent', heldSqlite: [] }), { record: { check: 'passed', file: FILE, pids: [42] } });
  });

  it('unknown: skipped with the reason, and a warning', () => {
    const v = judge(at, { state: 'unknown', why: 'no /proc' }, { state: 'unknown', why: 'no /proc' });
    assert.deepEqual(v, {
      record: { check: 'skipped', file: FILE, why: 'cannot tell which dir the server serves: no /proc' },
      warning: 'the check that the server serves /data/chroma_db was skipped: no /proc',
    });
  });

  it('no live dir (first deploy): nothing to check, no warning; unless the volume root is served', () => {
    assert.deepEqual(judge(at, { state: 'absent', heldSqlite: [] }, { state: 'not-held', heldSqlite: [] }),
      { record: { check: 'skipped', file: FILE, why: 'no live dir yet (first deploy): nothing serves it' } });
    const line = refusal(judge(at, { state: 'absent', heldSqlite: ['/data/chroma.sqlite3'] }, { state: 'held', pids: [7] }));
    assert.equal(line, 'the server serves the volume root (/data/chroma.sqlite3 is open), not /data/chroma_db, the dir this deploy replaces: ' +
      'a server serving the volume root cannot be swapped by renames; nothing was changed. Move its data into a subdirectory: stop the server, ' +
      'mkdir /data/chroma_db, move /data/chroma.sqlite3 and the collection dirs (the UUID-named ones) into it, ' +
      "set CHROMA_PERSIST_PATH=/data/chroma_db in fly.toml's [env] (or the server's config), start the server, then deploy again");
  });

  it('the volume root served while a live dir exists: the unserved live dir is moved aside first', () => {
    const line = refusal(judge({ ...at, serverDown: true }, { state: 'not-held', heldSqlite: ['/data/chroma.sqlite3'] }, { state: 'held', pids: [7] }));
    assert.match(line, /stop the server, move the unserved \/data\/chroma_db aside, mkdir \/data\/chroma_db, move/);
    assert.ok(!line.includes('\n'));
  });

  it('not held, the server down (--allow-server-down): skipped, saying so', () => {
    const v = judge({ ...at, serverDown: true }, { state: 'not-held', heldSqlite: [] }, { state: 'not-held', heldSqlite: [] });
    const why = `the server is down (--allow-server-down): nothing holds ${FILE} open`;
    assert.deepEqual(v, { record: { check: 'skipped', file: FILE, why }, warning: `the check that the server serves /data/chroma_db was skipped: ${why}` });
  });

  it('the server down and /proc unable to tell (e.g. pid 1 unreadable, no other sqlite open): skipped as down, not as unknown', () => {
    const unknown = { state: 'unknown', why: 'root may not read the open files of 1 process' } as const;
    const v = judge({ ...at, serverDown: true }, unknown, unknown);
    const why = `the server is down (--allow-server-down): nothing holds ${FILE} open`;
    assert.deepEqual(v, { record: { check: 'skipped', file: FILE, why }, warning: `the check that the server serves /data/chroma_db was skipped: ${why}` });
  });

  it('not held: refused naming the served path (one under the volume first), the deployed path and the fix', () => {
    const held = ['/data/chroma.sqlite3x/chroma.sqlite3', '/srv/elsewhere/chroma.sqlite3', '/data/other/chroma.sqlite3'].sort();
    const line = refusal(judge(at, { state: 'not-held', heldSqlite: held }, { state: 'not-held', heldSqlite: held }));
    assert.equal(line, 'no process on local:/ holds /data/chroma_db/chroma.sqlite3 open, so the server does not serve /data/chroma_db, the dir this deploy replaces: ' +
      'the server serves /data/chroma.sqlite3x/chroma.sqlite3 (also open: /data/other/chroma.sqlite3, /srv/elsewhere/chroma.sqlite3); nothing was changed. ' +
      "Make the server serve /data/chroma_db: set CHROMA_PERSIST_PATH=/data/chroma_db in fly.toml's [env] (or the server's config) and restart it; " +
      'or deploy to the dir it serves with --volume and --db-dir (--db-dir chroma.sqlite3x)');
    const outside = refusal(judge(at, { state: 'not-held', heldSqlite: ['/srv/a/chroma.sqlite3'] }, { state: 'not-held', heldSqlite: [] }));
    assert.match(outside, /: the chroma\.sqlite3 files open there are \/srv\/a\/chroma\.sqlite3; nothing was changed\. .*--volume and --db-dir$/);
    const none = refusal(judge(at, { state: 'not-held', heldSqlite: [] }, { state: 'not-held', heldSqlite: [] }));
    assert.match(none, /: no process there holds any chroma\.sqlite3 open \(does --health-url name a server on another host\?\); nothing was changed/);
  });
});

describe('checkServedDir', () => {
  const PROBE = 'find the processes that hold the files open';
  const input = (h: RecordingHost, o: { healthUrl?: string; swaps?: boolean; attention?: boolean } = {}) => {
    const summary: { warnings: string[]; servedDir?: ServedDirRecord } = { warnings: [] };
    return {
      summary,
      i: {
        host: h, layout, healthUrl: 'healthUrl' in o ? o.healthUrl : 'http://127.0.0.1:8000', serverDown: false, swaps: o.swaps ?? true, summary,
        needsAttention: async () => o.attention ?? false,
      },
    };
  };

  it('runs no probe without a server to check (--no-verify) or a swap in this run (--from/--only)', async () => {
    const h = new RecordingHost({}, { root: '/' });
    const a = input(h, { healthUrl: undefined });
    await checkServedDir(a.i);
    assert.deepEqual(a.summary.servedDir, { check: 'skipped', file: FILE, why: 'no server to check (--no-verify)' });
    const b = input(h, { swaps: false });
    await checkServedDir(b.i);
    assert.deepEqual(b.summary.servedDir, { check: 'skipped', file: FILE, why: 'this run does not swap the live dir (--from/--only)' });
    assert.equal(h.recorded.length, 0);
  });

  it('probes the live and the volume root chroma.sqlite3 in one command, and refuses at once on a clean volume', async () => {
    const h = new RecordingHost({ [PROBE]: 'denied=0\nuid=0\nsqlite=/data/x/chroma.sqlite3\n' }, { root: '/' });
    await assert.rejects(checkServedDir(input(h).i), (e: unknown) => e instanceof UserError && /the server serves \/data\/x\/chroma\.sqlite3/.test(e.message));
    assert.deepEqual(h.recorded.map((r) => r.args), [['/data/chroma_db/chroma.sqlite3', '/data/chroma.sqlite3']]);
  });

  it('a refusal on a volume that needs attention waits for the reconciliation, then is checked again', async () => {
    const h = new RecordingHost({ [PROBE]: 'denied=0\nuid=0\n' }, { root: '/' });
    const a = input(h, { attention: true });
    const check = await checkServedDir(a.i);
    assert.equal(a.summary.servedDir, undefined, 'nothing decided yet');
    h.answer(PROBE, 'held=1:99\ndenied=0\nuid=0\n'); // e.g. the reconciliation reversed an interrupted swap
    await check.afterReconcile();
    assert.deepEqual(a.summary.servedDir, { check: 'passed', file: FILE, pids: [99] });

    const b = input(h, { attention: true });
    h.answer(PROBE, 'denied=0\nuid=0\n');
    const still = await checkServedDir(b.i);
    await assert.rejects(still.afterReconcile(), (e: unknown) => e instanceof UserError && e.exitCode === 2);
  });
});
