/**
 * A data id file inside a Chroma persist dir: the real `chroma run` serves the dir (and writes to
 * it) with `.ferry-data-id` present, and leaves the file as it was. This is why ids live inside
 * the data dirs (they move with every rename) rather than beside them.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { listCollectionCounts } from '../lib/chroma/http.ts';
import { addRecords, buildSampleDb } from '../testkit/sample-db.ts';
import { startChromaServer } from '../lib/chroma/server.ts';
import { LocalHost } from '../lib/hosts/local.ts';
import { archiveDataId, DATA_ID_FILE, writeDataIdScript } from '../lib/volume/data-id.ts';

describe('a data id file in a Chroma persist dir', () => {
  let root = '';
  before(async () => { root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-dataid-')); });
  after(async () => { await fs.rm(root, { recursive: true, force: true }); });

  it('is served around, written around, and left untouched by chroma run', async () => {
    const db = path.join(root, 'chroma_db');
    await buildSampleDb(db, [{ name: 'id-probe', count: 60, dim: 8 }]);
    const id = archiveDataId('e'.repeat(64), 'run0001');
    await new LocalHost(root).run(writeDataIdScript(db, id));
    const server = await startChromaServer({ path: db });
    try {
      assert.deepEqual((await listCollectionCounts(server.url)).map((c) => [c.name, c.count]), [['id-probe', 60]]);
      await addRecords(server.url, 'id-probe', { start: 60, count: 20, dim: 8 });
      assert.deepEqual((await listCollectionCounts(server.url)).map((c) => [c.name, c.count]), [['id-probe', 80]]);
    } finally {
      await server.stop();
    }
    const again = await startChromaServer({ path: db });
    try {
      assert.deepEqual((await listCollectionCounts(again.url)).map((c) => [c.name, c.count]), [['id-probe', 80]]);
    } finally {
      await again.stop();
    }
    assert.equal(await fs.readFile(path.join(db, DATA_ID_FILE), 'utf8'), `${id}\n`);
  });
});
