import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { heartbeat, listCollectionCounts, waitForHeartbeat } from '../lib/chroma/http.ts';
import { localChromaRestartCommand } from '../testkit/restart-command.ts';
import { addRecords, buildSampleDb, type SampleCollectionSpec } from '../testkit/sample-db.ts';
import { freePort, startChromaServer, type ChromaServer } from '../lib/chroma/server.ts';
import { processRuns as alive } from './helpers/proc-scan.ts';

const SPECS: SampleCollectionSpec[] = [
  { name: 'alpha', count: 37, dim: 8, space: 'cosine' },
  { name: 'beta', count: 260, dim: 16, space: 'l2' },
  { name: 'gamma', count: 5, dim: 4, space: 'ip', idPrefix: 'g:' },
];

function counts(list: { name: string; count: number }[]): Record<string, number> {
  return Object.fromEntries(list.map((c) => [c.name, c.count]));
}


async function waitGone(pid: number, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (alive(pid) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  assert.ok(!alive(pid), `pid ${pid} still alive`);
}

describe('embedded Chroma server', () => {
  let tmp: string;
  let dataDir: string;
  let built: Record<string, number>;
  const started: number[] = [];

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-chroma-'));
    // A hostile directory name: the restart script must quote every expansion.
    dataDir = path.join(tmp, `it's "data" $(touch pwned); x`);
    built = await buildSampleDb(dataDir, SPECS, { seed: 7 });
  });

  after(() => {
    for (const pid of started) if (alive(pid)) process.kill(pid, 'SIGKILL');
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('serves the built sample database', async () => {
    assert.deepEqual(built, { alpha: 37, beta: 260, gamma: 5 });
    assert.ok(fs.existsSync(path.join(dataDir, 'chroma.sqlite3')));
    const server = await startChromaServer({ path: dataDir });
    try {
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(await heartbeat(server.url), 'v2');
      const served = await listCollectionCounts(server.url);
      assert.deepEqual(served.map((c) => c.name), ['alpha', 'beta', 'gamma']);
      assert.deepEqual(counts(served), built);
      assert.ok(served.every((c) => c.tenant === 'default_tenant' && c.database === 'default_database' && c.id));

      // A database or tenant that does not exist serves nothing.
      const none = await listCollectionCounts(server.url, [
        { tenant: 'default_tenant', database: 'no_such_db' },
        { tenant: 'no_such_tenant', database: 'default_database' },
      ]);
      assert.deepEqual(none, []);

      await addRecords(server.url, 'gamma', { start: 5, count: 3, dim: 4, idPrefix: 'g:' });
      assert.equal(counts(await listCollectionCounts(server.url)).gamma, 8);
    } finally {
      await server.stop();
    }
    assert.ok(!alive(server.pid));
  });

  test('a stopped server makes heartbeat throw', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    await assert.rejects(heartbeat(url, 2000), /no Chroma server answers at http:\/\/127\.0\.0\.1:\d+/);
    await assert.rejects(waitForHeartbeat(url, { timeoutMs: 600, intervalMs: 100 }), /did not answer within 600 ms/);
  });

  test('a server that exits at once rejects with its log', async () => {
    const notADir = path.join(tmp, 'plain-file');
    fs.writeFileSync(notADir, 'x');
    await assert.rejects(startChromaServer({ path: notADir, timeoutMs: 15_000 }), (e: Error) => {
      assert.match(e.message, /exited before answering|did not answer/);
      assert.match(e.message, /server log/);
      return true;
    });
  });

  test('a port in use is refused, not mistaken for our server', async () => {
    const blocker = await startChromaServer({ path: path.join(tmp, 'blocker') });
    try {
      await assert.rejects(startChromaServer({ path: path.join(tmp, 'other'), port: blocker.port, timeoutMs: 10_000 }), (e: Error) => {
        assert.match(e.message, /already in use/);
        return true;
      });
    } finally {
      await blocker.stop();
    }
  });

  test('the restart command restarts the server on the same data, detached', async () => {
    const pidFile = path.join(tmp, `pid 'file' $(touch pwned)`);
    const logFile = path.join(tmp, `log "file"; x.log`);
    const first = await startChromaServer({ path: dataDir });
    fs.writeFileSync(pidFile, `${first.pid}\n`);
    const cmd = localChromaRestartCommand({ pidFile, port: first.port, dataDir, logFile });

    for (let round = 1; round <= 2; round++) {
      const oldPid = Number(fs.readFileSync(pidFile, 'utf8'));
      const t0 = Date.now();
      const r = await execa('sh', ['-c', cmd], { cwd: tmp, reject: false, timeout: 30_000 });
      assert.equal(r.exitCode, 0, r.stderr);
      assert.ok(Date.now() - t0 < 20_000, 'the restart command returns at once');
      const newPid = Number(fs.readFileSync(pidFile, 'utf8'));
      started.push(newPid);
      assert.notEqual(newPid, oldPid);
      await waitGone(oldPid);
      assert.equal(await waitForHeartbeat(first.url, { timeoutMs: 30_000 }), 'v2');
      assert.deepEqual(counts(await listCollectionCounts(first.url)), { ...built, gamma: 8 });
      assert.ok(alive(newPid));
    }
    await first.stop(); // already gone: a no-op

    const last = Number(fs.readFileSync(pidFile, 'utf8'));
    process.kill(last, 'SIGTERM');
    await waitGone(last);
    assert.ok(!fs.existsSync(path.join(tmp, 'pwned')), 'nothing in the paths was executed');
    assert.match(fs.readFileSync(logFile, 'utf8'), /Saving data to/);
  });
});
