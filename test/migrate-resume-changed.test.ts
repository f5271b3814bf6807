/**
 * `migrate --resume` continues the checkpoint's run only: with another tenant, database, target
 * URL or collection set it is refused in one line naming what changed (exit 2), and nothing is
 * written (the target's databases and the checkpoint as they were). Real Chroma servers.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromaAdminFor, chromaClientFor, type ChromaScope } from '../lib/chroma/client.ts';
import { startChromaServer, type ChromaServer } from '../lib/chroma/server.ts';
import { sampleRecords } from '../testkit/sample-db.ts';
import { runCli } from './helpers/deploy-env.ts';
import { dumpServed } from './helpers/served-content.ts';

const SRC: ChromaScope = { tenant: 'resume_src', database: 'resume_src_db' };
const TGT: ChromaScope = { tenant: 'resume_tgt', database: 'resume_tgt_db' };
const OTHER: ChromaScope = { tenant: 'resume_tgt', database: 'resume_other_db' };

async function makeScope(url: string, s: ChromaScope): Promise<void> {
  await chromaAdminFor(url).createTenant({ name: s.tenant }).catch(() => undefined);
  await chromaAdminFor(url).createDatabase({ tenant: s.tenant, name: s.database });
}

describe('migrate --resume with changed values', () => {
  let root: string;
  let a: ChromaServer;
  let b: ChromaServer;
  let cp: string;
  const scoped = (side: 'source' | 'target', s: ChromaScope) => [`--${side}-tenant`, s.tenant, `--${side}-database`, s.database];
  const migrate = (args: string[]) => runCli(['migrate', '--yes', '--json', '--checkpoint-dir', cp, '--log-dir', path.join(root, 'logs'), ...args]);

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-resume-changed-'));
    [a, b] = await Promise.all([startChromaServer({ path: path.join(root, 'a') }), startChromaServer({ path: path.join(root, 'b') })]);
    await makeScope(a.url, SRC);
    await makeScope(b.url, TGT);
    await makeScope(b.url, OTHER);
    for (const [name, seed] of [['notes', 1], ['tags', 2]] as const) {
      const col = await chromaClientFor(a.url, null, SRC).createCollection({ name, embeddingFunction: null });
      const r = sampleRecords({ collection: name, start: 0, count: 30, dim: 8, seed });
      await col.add({ ids: r.ids, embeddings: r.embeddings, documents: r.documents, metadatas: r.metadatas });
    }
    cp = path.join(root, 'cp');
    const r = await migrate(['--source-url', a.url, ...scoped('source', SRC), '--target-url', b.url, ...scoped('target', TGT), '--filter-collection', 'notes']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
  });
  after(async () => {
    await a?.stop().catch(() => undefined);
    await b?.stop().catch(() => undefined);
    await fs.rm(root, { recursive: true, force: true });
  });

  it('another tenant, database, target URL or collection set: one line naming it, exit 2, nothing written', async () => {
    const same = ['--source-url', a.url, ...scoped('source', SRC)];
    const bHost = b.url.replace('127.0.0.1', 'localhost'); // the same server under another URL: still another --target-url
    const cases: [string[], RegExp][] = [
      [[...same, '--target-url', b.url, ...scoped('target', OTHER), '--filter-collection', 'notes'], /--target-database was resume_tgt_db, now resume_other_db/],
      [[...same, '--target-url', b.url, '--target-database', TGT.database, '--filter-collection', 'notes'], /--target-tenant was resume_tgt, now default_tenant/],
      [['--source-url', a.url, '--source-tenant', SRC.tenant, '--target-url', b.url, ...scoped('target', TGT), '--filter-collection', 'notes'], /--source-database was resume_src_db, now default_database/],
      [[...same, '--target-url', bHost, ...scoped('target', TGT), '--filter-collection', 'notes'], new RegExp(`--target-url was ${b.url}, now ${bHost}`)],
      [[...same, '--target-url', b.url, ...scoped('target', TGT), '--filter-collection', 'notes', '--filter-collection', 'tags'], /--filter-collection was notes, now notes, tags/],
      [[...same, '--target-url', b.url, ...scoped('target', TGT)], /--filter-collection was notes, now every collection/],
    ];
    const checkpoint = await fs.readFile(path.join(cp, 'migrate-checkpoint.json'), 'utf8');
    const journal = await fs.readFile(path.join(cp, 'cutover-journal.json'), 'utf8');
    const before = [await dumpServed(b.url), await dumpServed(b.url, TGT), await dumpServed(b.url, OTHER)];
    for (const [args, says] of cases) {
      const r = await migrate([...args, '--resume']);
      assert.equal(r.code, 2, `${args.join(' ')}\n${r.stderr}${r.stdout}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, says);
      assert.match(r.stderr, /pass the same values to continue it, or start a new run with another --checkpoint-dir \(without --resume\)/);
    }
    assert.deepEqual([await dumpServed(b.url), await dumpServed(b.url, TGT), await dumpServed(b.url, OTHER)], before, 'nothing written to the target');
    assert.equal(await fs.readFile(path.join(cp, 'migrate-checkpoint.json'), 'utf8'), checkpoint, 'the checkpoint unchanged');
    assert.equal(await fs.readFile(path.join(cp, 'cutover-journal.json'), 'utf8'), journal, 'the journal unchanged');
    assert.deepEqual([...before[2]!.keys()], [], 'nothing went into the other database');
  });

  it('the same values (flags in another order, a repeated --filter-collection): resumed, exit 0', async () => {
    const r = await migrate(['--target-url', b.url, ...scoped('target', TGT), '--filter-collection', 'notes', '--filter-collection', 'notes',
      '--source-url', a.url, ...scoped('source', SRC), '--resume']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.resumed, true);
    assert.deepEqual([...(await dumpServed(b.url, TGT)).keys()], ['notes']);
  });
});
