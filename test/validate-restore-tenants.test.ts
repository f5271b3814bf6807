/**
 * `validate` and `restore` in a tenant and database other than the defaults, against real Chroma
 * servers behind token-checking proxies (test/helpers/token-proxy.ts): the same
 * `--source-tenant/--source-database/--target-tenant/--target-database` flags and API-key
 * variables as `migrate`; a missing tenant or database refused in one line before any write; the
 * rollback of a FAILED gate restores into the new database's tenant and database, nowhere else.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromaAdminFor, chromaClientFor, type ChromaScope } from '../lib/chroma/client.ts';
import { startChromaServer, type ChromaServer } from '../lib/chroma/server.ts';
import { runCli, type CliResult } from './helpers/deploy-env.ts';
import { assertSameContent, dumpServed } from './helpers/served-content.ts';
import { fill, makeScope } from './helpers/tenant-scope.ts';
import { startTokenProxy, type TokenProxy } from './helpers/token-proxy.ts';

const SOURCE_TOKEN = 'gate-src-token-NEVER-PRINT-51ac07';
const TARGET_TOKEN = 'gate-tgt-token-NEVER-PRINT-c2d9e4';
const ENV = { CHROMA_SOURCE_API_KEY: SOURCE_TOKEN, CHROMA_TARGET_API_KEY: TARGET_TOKEN };
const SRC: ChromaScope = { tenant: 'gate_src_tenant', database: 'gate_src_db' };
const TGT: ChromaScope = { tenant: 'gate_tgt_tenant', database: 'gate_tgt_db' };
function assertNoToken(rs: CliResult[], texts: string[] = []): void {
  for (const t of [SOURCE_TOKEN, TARGET_TOKEN]) {
    for (const r of rs) assert.ok(!r.stdout.includes(t) && !r.stderr.includes(t), 'a token was printed');
    for (const x of texts) assert.ok(!x.includes(t), 'a token was written');
  }
}

describe('validate and restore: tenants, databases, tokens', () => {
  let root: string;
  let a: ChromaServer;
  let b: ChromaServer;
  let src: TokenProxy;
  let tgt: TokenProxy;
  let cp: string;

  const scoped = (side: 'source' | 'target', s: ChromaScope) => [`--${side}-tenant`, s.tenant, `--${side}-database`, s.database];
  const validate = (extra: string[]) => runCli(['validate', '--yes', '--json', '--old-db-url', src.url, '--new-db-url', tgt.url, '--checkpoint-dir', cp,
    '--output', path.join(root, `report-${Math.random().toString(36).slice(2)}.md`), ...extra], { env: ENV });

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-gate-tenants-'));
    [a, b] = await Promise.all([startChromaServer({ path: path.join(root, 'a') }), startChromaServer({ path: path.join(root, 'b') })]);
    await makeScope(a.url, SRC);
    await makeScope(b.url, TGT);
    await fill(a.url, SRC, 'notes', 90, 3);
    await fill(a.url, SRC, 'tags', 30, 4);
    await fill(a.url, undefined, 'in_default_db', 20, 5); // another database: never compared
    await fill(b.url, undefined, 'keep_default', 12, 6); // the target's default database: never touched
    src = await startTokenProxy(a.url, SOURCE_TOKEN);
    tgt = await startTokenProxy(b.url, TARGET_TOKEN);
    cp = path.join(root, 'cp');
    const m = await runCli(['migrate', '--yes', '--json', '--source-url', src.url, ...scoped('source', SRC), '--target-url', tgt.url, ...scoped('target', TGT),
      '--checkpoint-dir', cp, '--log-dir', path.join(root, 'logs')], { env: ENV });
    assert.equal(m.code, 0, m.stderr + m.stdout);
  });
  after(async () => {
    await src?.close();
    await tgt?.close();
    await a?.stop().catch(() => undefined);
    await b?.stop().catch(() => undefined);
    await fs.rm(root, { recursive: true, force: true });
  });

  it('validate reads the chosen tenant and database on each side (tokens from the variables, printed nowhere): PASSED', async () => {
    const r = await validate([...scoped('source', SRC), ...scoped('target', TGT)]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.overall_status, 'PASSED');
    const counts = (r.json.checks as { name: string; status: string; figures: Record<string, unknown>; details: string[] }[]).find((c) => c.name === 'count_verification');
    assert.equal(counts?.status, 'PASSED', JSON.stringify(counts));
    assert.match(JSON.stringify(counts), /120/, 'the 90 + 30 records of the chosen databases are counted');
    assert.doesNotMatch(JSON.stringify(r.json), /in_default_db/, 'the source\'s default database is not compared');
    assert.equal(src.refused + tgt.refused, 0, 'every request carried its side\'s token');
    assertNoToken([r], [await fs.readFile(r.json.report_files.json, 'utf8'), await fs.readFile(r.json.report_files.markdown, 'utf8')]);
  });

  it('validate: a missing tenant or database on either side is refused in one line (exit 2), naming the flag', async () => {
    for (const [flags, says] of [
      [[...scoped('source', SRC), '--target-tenant', TGT.tenant, '--target-database', 'gate_nope_db'], /no database gate_nope_db in tenant gate_tgt_tenant there; check --target-database/],
      [['--source-tenant', 'gate_nope_tenant', ...scoped('target', TGT)], /no tenant gate_nope_tenant there; check --source-tenant/],
    ] as const) {
      const r = await validate([...flags]);
      assert.equal(r.code, 2, r.stderr + r.stdout);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, says);
      assert.doesNotMatch(r.stderr, /--create-database/, 'validate creates nothing');
    }
    const q = await validate(['--target-tenant', '']);
    assert.equal(q.code, 2);
    assert.match(q.stderr, /--target-tenant: empty name/);
  });

  it('restore writes into the chosen tenant and database only; a missing one is refused before any write', async () => {
    const other: ChromaScope = { tenant: TGT.tenant, database: 'gate_restore_db' };
    await makeScope(b.url, other);
    const backup = path.join(root, 'export.jsonl');
    const x = await runCli(['migrate', '--yes', '--json', '--source-url', src.url, ...scoped('source', SRC), '--target-url', backup,
      '--checkpoint-dir', path.join(root, 'cp-export'), '--log-dir', path.join(root, 'logs')], { env: ENV });
    assert.equal(x.code, 0, x.stderr + x.stdout);
    const defaultBefore = await dumpServed(b.url);
    const tgtBefore = await dumpServed(b.url, TGT);

    const missing = await runCli(['restore', '--yes', '--json', '--backup', backup, '--target-url', tgt.url, '--target-tenant', TGT.tenant, '--target-database', 'gate_nope_db'], { env: ENV });
    assert.equal(missing.code, 2, missing.stderr + missing.stdout);
    assert.equal(missing.stderr.trim().split('\n').length, 1, missing.stderr);
    assert.match(missing.stderr, /no database gate_nope_db in tenant gate_tgt_tenant there; check --target-database/);
    await assert.rejects(chromaAdminFor(b.url).getDatabase({ tenant: TGT.tenant, name: 'gate_nope_db' }), 'nothing created');

    const plan = await runCli(['restore', '--plan', '--backup', backup, '--target-url', tgt.url, ...scoped('target', other)], { env: ENV });
    assert.equal(plan.code, 0, plan.stderr + plan.stdout);
    assert.match(plan.stdout, /gate_restore_db/, 'the plan names the database it would write');

    const r = await runCli(['restore', '--yes', '--json', '--backup', backup, '--target-url', tgt.url, ...scoped('target', other)], { env: ENV });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    await assertSameContent(a.url, b.url, { a: SRC, b: other });
    assert.deepEqual(await dumpServed(b.url), defaultBefore, 'the default database is untouched');
    assert.deepEqual(await dumpServed(b.url, TGT), tgtBefore, 'the other database of the tenant is untouched');
    assertNoToken([missing, plan, r], [await fs.readFile(r.json.reportFile, 'utf8')]);
  });

  it('validate --auto-rollback after a FAILED gate restores the new database\'s tenant and database, nothing else', async () => {
    const notes = await chromaClientFor(b.url, null, TGT).getCollection({ name: 'notes', embeddingFunction: undefined } as never);
    const one = await notes.get({ limit: 1 });
    await notes.update({ ids: [one.ids[0]!], metadatas: [{ source: 'TAMPERED' }] });
    const defaultBefore = await dumpServed(b.url);
    const r = await validate([...scoped('source', SRC), ...scoped('target', TGT), '--auto-rollback']);
    assert.equal(r.code, 1, r.stderr + r.stdout);
    assert.equal(r.json.overall_status, 'FAILED');
    assert.equal(r.json.rollback_executed, true);
    assert.equal(r.json.rollback_result.ok, true, JSON.stringify(r.json.rollback_result));
    assert.deepEqual(r.json.new_db_scope, TGT);
    // The target database was empty before the migration: its collections are gone again.
    assert.deepEqual([...(await dumpServed(b.url, TGT)).keys()], []);
    assert.deepEqual(await dumpServed(b.url), defaultBefore, 'the default database is untouched');
    assertNoToken([r]);
  });
});
