/**
 * The repo's fly.toml, as the official chromadb/chroma 1.x image runs it: `chroma run /config.yaml`
 * (persist_path "/data", the volume root) with fly.toml's [env] on top. The server must serve
 * /data/chroma_db, the dir a deploy with the default --volume and --db-dir replaces.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { listCollectionCounts } from '../lib/chroma/http.ts';
import { OLD_SPEC, runCli, sampleDbCopy, SOURCE_SPEC } from './helpers/deploy-env.ts';
import { holdsOpen, OLD_FLY_ENV, readFlyApp, startAsImage, type ImageServer } from './helpers/stock-image.ts';

const exists = (p: string) => fs.access(p).then(() => true, () => false);
const counts = async (url: string) => (await listCollectionCounts(url)).map((c) => [c.name, c.count]);

describe("the repo's fly.toml on the stock Chroma image", () => {
  let tmp: string;
  const servers: ImageServer[] = [];
  before(async () => { tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-image-')); });
  after(async () => {
    for (const s of servers) await s.stop();
    await fs.rm(tmp, { recursive: true, force: true });
  });

  async function start(name: string, env?: Record<string, string>, seed = false): Promise<{ server: ImageServer; root: string; volume: string }> {
    const root = path.join(tmp, name);
    const volume = path.join(root, 'target', 'data');
    await fs.mkdir(volume, { recursive: true });
    if (seed) await sampleDbCopy(path.join(volume, 'chroma_db'), OLD_SPEC, 3);
    const server = await startAsImage({ dir: root, volumeOnDisk: volume, env });
    servers.push(server);
    return { server, root, volume };
  }

  it('its [env] makes the server write VOLUME/chroma_db/chroma.sqlite3', async () => {
    const app = await readFlyApp();
    assert.equal(app.mount, '/data');
    assert.equal(app.env.CHROMA_PERSIST_PATH, '/data/chroma_db');
    const { server, volume } = await start('fixed');
    assert.ok(await exists(path.join(volume, 'chroma_db', 'chroma.sqlite3')), await server.log());
    assert.ok(!(await exists(path.join(volume, 'chroma.sqlite3'))), 'nothing at the volume root');
    assert.ok(await holdsOpen(await server.pid(), path.join(volume, 'chroma_db', 'chroma.sqlite3')));
  });

  it('control: the old [env] (IS_PERSISTENT, PERSIST_DIRECTORY) is ignored and the server writes the volume root', async () => {
    const { server, volume } = await start('old', OLD_FLY_ENV);
    assert.ok(await exists(path.join(volume, 'chroma.sqlite3')), await server.log());
    assert.ok(!(await exists(path.join(volume, 'chroma_db'))), 'PERSIST_DIRECTORY=/data/chroma_db was not honoured');
    assert.ok(await holdsOpen(await server.pid(), path.join(volume, 'chroma.sqlite3')));
  });

  it('a deploy with the default --volume and --db-dir replaces the dir it serves, restarts it the same way and verifies', async () => {
    const { server, root, volume } = await start('deploy', undefined, true);
    assert.deepEqual(await counts(server.url), [['legacy', 40]]);
    const source = path.join(root, 'source');
    await sampleDbCopy(source, SOURCE_SPEC, 11);
    const pidBefore = await server.pid();
    const r = await runCli(['deploy', '--source', source, '--target', `local:${path.join(root, 'target')}`,
      '--restart-cmd', server.restartCmd, '--health-url', server.url, '--health-timeout', '30s', '--yes', '--json']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json?.verified, true);
    assert.deepEqual(await counts(server.url), [['books', 300], ['laws', 150]]);
    const pid = await server.pid();
    assert.notEqual(pid, pidBefore, 'restarted');
    assert.ok(await holdsOpen(pid, path.join(volume, 'chroma_db', 'chroma.sqlite3')), 'serves the deployed dir');
    assert.ok(await exists(path.join(volume, 'chroma_db.old', 'chroma.sqlite3')));
    assert.ok(!(await exists(path.join(volume, 'chroma.sqlite3'))));
  });

  it('control: with the old [env] the same deploy is refused in preflight (it would replace a dir nobody serves): exit 2, nothing changed', async () => {
    const { server, root, volume } = await start('deploy-old', OLD_FLY_ENV, true);
    assert.deepEqual(await counts(server.url), [], 'the seeded chroma_db is not what it serves');
    const source = path.join(root, 'source');
    await sampleDbCopy(source, SOURCE_SPEC, 11);
    const r = await runCli(['deploy', '--source', source, '--target', `local:${path.join(root, 'target')}`,
      '--restart-cmd', server.restartCmd, '--health-url', server.url, '--health-timeout', '30s', '--yes', '--json']);
    assert.equal(r.code, 2, r.stderr + r.stdout);
    assert.match(r.stderr, /serves the volume root|CHROMA_PERSIST_PATH/, r.stderr);
    assert.ok(!(await exists(path.join(volume, '.ferry'))), 'nothing written to the volume');
    assert.ok(!(await exists(path.join(volume, 'chroma_db.old'))), 'no swap');
    assert.deepEqual(await counts(server.url), []);
    assert.ok(await holdsOpen(await server.pid(), path.join(volume, 'chroma.sqlite3')));
  });
});
