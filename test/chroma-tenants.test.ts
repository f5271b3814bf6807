/**
 * Tenants, databases, tokens and Chroma Cloud's limits, against real Chroma servers:
 * - a second tenant and database created through the server's API: migrate between them; a
 *   missing one refused before any write (exit 2, one line); --create-database creates it;
 * - a token-checking proxy that answers 429 to exactly every tenth write and 503 once: the run
 *   completes with exactly the source's content, and the tokens appear in no output or file;
 * - a Cloud-shaped proxy (identity and a 300-record max batch served by the proxy): tenant and
 *   database resolved from the identity, no request above 300 records, as target and as source.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromaAdminFor, type ChromaScope } from '../lib/chroma/client.ts';
import { startChromaServer, type ChromaServer } from '../lib/chroma/server.ts';
import { runCli, type CliResult } from './helpers/deploy-env.ts';
import { assertSameContent, dumpServed } from './helpers/served-content.ts';
import { fill, makeScope } from './helpers/tenant-scope.ts';
import { startTokenProxy, type TokenProxy } from './helpers/token-proxy.ts';
import { filesUnder } from './helpers/written-files.ts';

const SOURCE_TOKEN = 'src-tenant-token-NEVER-PRINT-3e91ab';
const TARGET_TOKEN = 'tgt-tenant-token-NEVER-PRINT-77c0d2';
const SRC: ChromaScope = { tenant: 'ferry_src_tenant', database: 'ferry_src_db' };
async function assertNowhere(secrets: string[], r: CliResult[], dirs: string[]): Promise<void> {
  for (const s of secrets) {
    for (const x of r) assert.ok(!x.stdout.includes(s) && !x.stderr.includes(s), `${s} was printed`);
    for (const d of dirs) for (const f of await filesUnder(d)) assert.ok(!f.text.includes(s), `${s} is in ${f.file}`);
  }
}

describe('tenants, databases, tokens, Chroma Cloud limits', () => {
  let root: string;
  let a: ChromaServer;
  let b: ChromaServer;
  const proxies: TokenProxy[] = [];
  let n = 0;
  const dirs = () => {
    n++;
    return { cp: path.join(root, `cp-${n}`), logs: path.join(root, `logs-${n}`) };
  };
  const migrate = (args: string[], env: Record<string, string> = {}) => {
    const d = dirs();
    return runCli(['migrate', '--yes', '--json', '--checkpoint-dir', d.cp, '--log-dir', d.logs, ...args], { env }).then((r) => ({ ...r, ...d }));
  };

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-tenants-'));
    [a, b] = await Promise.all([startChromaServer({ path: path.join(root, 'a') }), startChromaServer({ path: path.join(root, 'b') })]);
    await makeScope(a.url, SRC);
    await fill(a.url, SRC, 'notes', 700, 3);
    await fill(a.url, SRC, 'tags', 40, 4);
    await fill(a.url, undefined, 'in_default_db', 30, 5); // must not travel: it is another database
  });
  after(async () => {
    for (const p of proxies) await p.close();
    await a?.stop().catch(() => undefined);
    await b?.stop().catch(() => undefined);
    await fs.rm(root, { recursive: true, force: true });
  });

  it('migrates from one tenant/database to another; nothing from or into the default database', async () => {
    const to: ChromaScope = { tenant: 'ferry_t2', database: 'ferry_d2' };
    await makeScope(b.url, to);
    const r = await migrate(['--source-url', a.url, '--source-tenant', SRC.tenant, '--source-database', SRC.database,
      '--target-url', b.url, '--target-tenant', to.tenant, '--target-database', to.database]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    await assertSameContent(a.url, b.url, { a: SRC, b: to });
    assert.deepEqual([...(await dumpServed(b.url)).keys()], [], 'the target\'s default database is untouched');
  });

  it('a missing target database or tenant is refused before any write (exit 2, one line), the target unchanged', async () => {
    const before = await dumpServed(b.url);
    for (const [flags, says] of [
      [['--target-tenant', 'ferry_t2', '--target-database', 'ferry_nope_db'], /no database ferry_nope_db in tenant ferry_t2 there; check --target-database, or pass --create-database/],
      [['--target-tenant', 'ferry_nope_tenant'], /no tenant ferry_nope_tenant there; check --target-tenant, or pass --create-database/],
    ] as const) {
      const r = await migrate(['--source-url', a.url, '--source-tenant', SRC.tenant, '--source-database', SRC.database, '--target-url', b.url, ...flags]);
      assert.equal(r.code, 2, r.stderr + r.stdout);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, says);
      assert.equal((await fs.readdir(path.join(r.cp)).catch(() => [])).filter((f) => f !== 'checkpoint.json').length, 0, 'no staging');
    }
    const admin = chromaAdminFor(b.url);
    await assert.rejects(admin.getDatabase({ tenant: 'ferry_t2', name: 'ferry_nope_db' }));
    await assert.rejects(admin.getTenant({ name: 'ferry_nope_tenant' }));
    assert.deepEqual(await dumpServed(b.url), before);
    // A missing source database is refused the same way (never created on a source).
    const r = await migrate(['--source-url', a.url, '--source-database', 'ferry_nope_src', '--target-url', b.url, '--target-database', 'ferry_other']);
    assert.equal(r.code, 2, r.stderr + r.stdout);
    assert.match(r.stderr, /no database ferry_nope_src in tenant default_tenant there; check --source-database\n?$/);
  });

  it('--create-database creates the missing tenant and database just before the first write, and says so', async () => {
    const to: ChromaScope = { tenant: 'ferry_new_tenant', database: 'ferry_new_db' };
    const dry = await migrate(['--dry-run', '--source-url', a.url, '--source-tenant', SRC.tenant, '--source-database', SRC.database,
      '--target-url', b.url, '--target-tenant', to.tenant, '--target-database', to.database, '--create-database']);
    assert.equal(dry.code, 0, dry.stderr + dry.stdout);
    await assert.rejects(chromaAdminFor(b.url).getTenant({ name: to.tenant }), 'a dry run creates nothing');
    const r = await migrate(['--source-url', a.url, '--source-tenant', SRC.tenant, '--source-database', SRC.database,
      '--target-url', b.url, '--target-tenant', to.tenant, '--target-database', to.database, '--create-database']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal((r.json as { createdDatabase?: string }).createdDatabase, `tenant ${to.tenant} and its database ${to.database}`);
    await assertSameContent(a.url, b.url, { a: SRC, b: to });
  });

  it('through token-checking proxies answering 429 to every tenth write and 503 once: exactly the source\'s content, the tokens nowhere', async () => {
    const to: ChromaScope = { tenant: 'ferry_busy', database: 'ferry_busy_db' };
    await makeScope(b.url, to);
    const src = await startTokenProxy(a.url, SOURCE_TOKEN, { unavailableOnce: 'read' });
    const tgt = await startTokenProxy(b.url, TARGET_TOKEN, { rateLimitEvery: 10, unavailableOnce: 'write' });
    proxies.push(src, tgt);
    const env = { CHROMA_SOURCE_API_KEY: SOURCE_TOKEN, CHROMA_TARGET_API_KEY: TARGET_TOKEN };
    const r = await migrate(['--source-url', src.url, '--source-tenant', SRC.tenant, '--source-database', SRC.database,
      '--target-url', tgt.url, '--target-tenant', to.tenant, '--target-database', to.database, '--batch-size', '25', '--workers', '4'], env);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    await assertSameContent(a.url, b.url, { a: SRC, b: to });
    // 740 records in batches of 25: 28 + 2 batches, each busy answer retried (with backoff) under the client.
    assert.equal(tgt.busy[429], Math.floor(tgt.writes / 10));
    assert.ok(tgt.busy[429] >= 3, `429s: ${tgt.busy[429]}`);
    assert.equal(tgt.busy[503], 1);
    assert.equal(src.busy[503], 1);
    assert.equal(tgt.writes, 30 + tgt.busy[429] + tgt.busy[503], 'every write sent once, plus one resend per busy answer');
    assert.equal((r.json as { import: { retries: number } }).import.retries, 0, 'no batch failed: the busy answers were absorbed by the backoff');
    assert.equal(src.refused + tgt.refused, 0, 'every request carried its side\'s token');
    await assertNowhere([SOURCE_TOKEN, TARGET_TOKEN], [r], [r.cp, r.logs]);
  });

  it('Cloud-shaped: tenant and database from /api/v2/auth/identity, 300-record max batch: no request above 300, as target and as source', async () => {
    const cloud: ChromaScope = { tenant: 'ferry-cloud-tenant', database: 'ferry-cloud-db' };
    await makeScope(b.url, cloud);
    const proxy = await startTokenProxy(b.url, TARGET_TOKEN, { identity: { tenant: cloud.tenant, databases: [cloud.database] }, maxBatchSize: 300, rateLimitEvery: 10 });
    proxies.push(proxy);
    const up = await migrate(['--source-url', a.url, '--source-tenant', SRC.tenant, '--source-database', SRC.database,
      '--target-url', proxy.url, '--batch-size', '1000', '--workers', '12', '--verify-sample', '700'], { CHROMA_TARGET_API_KEY: TARGET_TOKEN });
    assert.equal(up.code, 0, up.stderr + up.stdout);
    assert.match((up.json as { warnings: string[] }).warnings.join('\n'), /above the target's max batch size 300/);
    await assertSameContent(a.url, b.url, { a: SRC, b: cloud });
    assert.ok(proxy.largestRequest <= 300 && proxy.largestRequest > 250, `largest request: ${proxy.largestRequest} records`);
    assert.ok(proxy.peakWritesInFlight <= 10, `writes in flight on one collection: ${proxy.peakWritesInFlight}`);
    assert.ok(proxy.servedLocally >= 2, 'identity and pre-flight asked of the (Cloud-shaped) server');

    // Cloud as the source: pages of at most 300, into a new persist dir.
    const before = proxy.largestRequest;
    const down = await migrate(['--source-url', proxy.url, '--target-url', path.join(root, 'from-cloud'), '--batch-size', '1000', '--verify-sample', '0'],
      { CHROMA_API_KEY: TARGET_TOKEN });
    assert.equal(down.code, 0, down.stderr + down.stdout);
    assert.ok(proxy.largestRequest <= 300, `largest read: ${proxy.largestRequest} (before: ${before})`);
    const summary = down.json as { collections: { source: string; exported: number }[] };
    assert.deepEqual(summary.collections.map((c) => [c.source, c.exported]), [['notes', 700], ['tags', 40]]);
    await assertNowhere([TARGET_TOKEN], [up, down], [up.cp, up.logs, down.cp, down.logs]);
  });
});
