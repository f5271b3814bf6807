/**
 * The validation gate and restore against real Chroma servers: a clean seed-schema migration
 * passes all nine checks (seed 004's eight and record_equality); each seeded fault is caught by its check with the right figure, and the
 * report says rollback_triggered (the decision) apart from rollback_executed (what this run did);
 * `--auto-rollback` restores the pre-migration state exactly; the migration's recorded transform is
 * used when --transform is omitted and a contradicting one is refused before anything changes.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Collection } from 'chromadb';
import { chromaClientFor } from '../lib/chroma/client.ts';
import { addRecords } from '../testkit/sample-db.ts';
import { startChromaServer, type ChromaServer } from '../lib/chroma/server.ts';
import { execa } from 'execa';
import { CLI, runCli } from './helpers/deploy-env.ts';
import { dumpServed } from './helpers/served-content.ts';

const SPECS = [
  { name: 'acme_personality', count: 300, space: 'cosine' as const },
  { name: 'acme_humor', count: 200, space: 'l2' as const },
  { name: 'acme_notes', count: 200, space: 'l2' as const },
];
const DIM = 16;

describe('validate and restore', () => {
  let root: string;
  let source: ChromaServer;
  let target: ChromaServer;
  let golden: string;
  let backupFile: string;
  let cpDir: string;
  const servers: ChromaServer[] = [];

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-gate-'));
    source = await startChromaServer({ path: path.join(root, 'old') });
    target = await startChromaServer({ path: path.join(root, 'new') });
    servers.push(source, target);
    const client = chromaClientFor(source.url);
    for (const s of SPECS) {
      await client.createCollection({ name: s.name, embeddingFunction: null, configuration: { hnsw: { space: s.space } } });
      await addRecords(source.url, s.name, { start: 0, count: s.count, dim: DIM, seed: 3 });
    }
    cpDir = path.join(root, 'cp');
    const m = await runCli(['migrate', '--yes', '--json', '--source-url', source.url, '--target-url', target.url, '--transform', 'seed-schema',
      '--prefix', 'acme', '--checkpoint-dir', cpDir, '--log-dir', path.join(root, 'logs')]);
    assert.equal(m.code, 0, m.stderr + m.stdout);
    backupFile = m.json.backupFile;
    // The migrated state, to put back between faults (restore from an export of it).
    golden = path.join(root, 'golden.jsonl');
    const g = await runCli(['migrate', '--yes', '--json', '--source-url', target.url, '--target-url', golden, '--checkpoint-dir', path.join(root, 'cp-golden'),
      '--log-dir', path.join(root, 'logs')]);
    assert.equal(g.code, 0, g.stderr + g.stdout);
  });
  after(async () => {
    for (const s of servers) await s.stop().catch(() => undefined);
    await fs.rm(root, { recursive: true, force: true });
  });

  const gate = async (extra: string[] = []) => {
    const out = path.join(root, `report-${Math.random().toString(36).slice(2)}.md`);
    const r = await runCli(['validate', '--json', '--yes', '--old-db-url', source.url, '--new-db-url', target.url, '--transform', 'seed-schema',
      '--prefix', 'acme', '--output', out, ...extra]);
    return { ...r, out };
  };
  const check = (r: { json?: any }, name: string): { name: string; status: string; figures: Record<string, number> } =>
    r.json.checks.find((c: { name: string }) => c.name === name);
  const col = (name: string) => chromaClientFor(target.url).getCollection({ name, embeddingFunction: undefined } as never) as Promise<Collection>;
  const restoreGolden = async () => {
    const r = await runCli(['restore', '--yes', '--json', '--backup', golden, '--target-url', target.url, '--report', path.join(root, 'golden-restore.json')]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
  };

  it('a clean migration passes all nine checks; reports in Markdown and JSON', async () => {
    const r = await gate();
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(r.json.overall_status, 'PASSED');
    assert.deepEqual(r.json.checks.map((c: { status: string }) => c.status), Array(9).fill('PASSED'));
    assert.equal(check(r, 'record_equality').figures.compared, 700);
    assert.equal(r.json.data_loss_percentage, 0);
    assert.equal(r.json.rollback_triggered, false);
    assert.equal(r.json.rollback_executed, false);
    assert.equal(r.json.rollback_result, null);
    assert.ok(check(r, 'semantic_search_equivalence').figures.queries! >= 20);
    assert.equal(check(r, 'citation_references').figures.required, 700);
    const json = JSON.parse(await fs.readFile(r.out.replace(/\.md$/, '.json'), 'utf8'));
    assert.equal(json.overall_status, 'PASSED');
    assert.match(await fs.readFile(r.out, 'utf8'), /# Validation report: PASSED[\s\S]*\| 8 \| citation_references \| ✅ PASSED[\s\S]*\| 9 \| record_equality \| ✅ PASSED/);
  });

  const faults: { name: string; check: string; figure: [string, number]; apply: () => Promise<void> }[] = [
    {
      name: '10% of records deleted', check: 'count_verification', figure: ['data_loss_percentage', 10],
      async apply() {
        for (const name of ['acme_personality', 'acme_humor', 'acme_corpus']) {
          const c = await col(name);
          const ids = (await c.get({ include: [] as never })).ids.sort();
          await c.delete({ ids: ids.filter((_, i) => i % 10 === 0) });
        }
      },
    },
    {
      name: 'embeddings perturbed', check: 'embedding_integrity', figure: ['mismatched', 20],
      async apply() {
        const c = await col('acme_humor');
        const got = await c.get({ limit: 20, include: ['embeddings'] as never });
        await c.update({ ids: got.ids, embeddings: got.embeddings.map((e) => e.map((v) => v + 0.01)) });
      },
    },
    {
      name: 'a required field removed', check: 'metadata_completeness', figure: ['records_missing_fields', 7],
      async apply() {
        const c = await col('acme_corpus');
        const got = await c.get({ limit: 7, include: ['embeddings', 'documents', 'metadatas'] as never });
        await c.delete({ ids: got.ids });
        await c.add({ ids: got.ids, embeddings: got.embeddings, documents: got.documents as string[],
          metadatas: got.metadatas.map((m) => { const { author: _drop, ...rest } = m!; return rest; }) });
      },
    },
    {
      name: 'vectors shuffled between ids', check: 'semantic_search_equivalence', figure: ['queries', 30],
      async apply() {
        const c = await col('acme_personality');
        const got = await c.get({ include: ['embeddings'] as never });
        const rotated = got.embeddings.map((_, i) => got.embeddings[(i + 1) % got.embeddings.length]!);
        for (let i = 0; i < got.ids.length; i += 100) await c.update({ ids: got.ids.slice(i, i + 100), embeddings: rotated.slice(i, i + 100) });
      },
    },
    {
      name: 'records moved to the wrong collection', check: 'collection_distribution', figure: ['records_off', 30],
      async apply() {
        const from = await col('acme_personality');
        const to = await col('acme_humor');
        const got = await from.get({ limit: 15, include: ['embeddings', 'documents', 'metadatas'] as never });
        await from.delete({ ids: got.ids });
        await to.add({ ids: got.ids, embeddings: got.embeddings, documents: got.documents as string[], metadatas: got.metadatas as never });
      },
    },
    {
      name: 'a duplicate inserted', check: 'duplicate_detection', figure: ['duplicate_ids_across_collections', 1],
      async apply() {
        const got = await (await col('acme_personality')).get({ limit: 1, include: ['embeddings', 'documents', 'metadatas'] as never });
        await (await col('acme_corpus')).add({ ids: got.ids, embeddings: got.embeddings, documents: got.documents as string[], metadatas: got.metadatas as never });
      },
    },
    {
      name: 'a field\'s type changed', check: 'field_type_validation', figure: ['wrong_types', 5],
      async apply() {
        const c = await col('acme_humor');
        const got = await c.get({ limit: 5, include: [] as never });
        await c.update({ ids: got.ids, metadatas: got.ids.map(() => ({ source_line: '12' })) });
      },
    },
    {
      name: 'a malformed citation URI', check: 'citation_references', figure: ['invalid', 3],
      async apply() {
        const c = await col('acme_corpus');
        const got = await c.get({ limit: 3, include: [] as never });
        await c.update({ ids: got.ids, metadatas: got.ids.map(() => ({ if_citation_uri: 'https://example.com/not-if' })) });
      },
    },
  ];

  for (const f of faults) {
    it(`fault: ${f.name} -> ${f.check} FAILED with ${f.figure[0]} ${f.figure[1]}`, async () => {
      await f.apply();
      try {
        const r = await gate();
        assert.equal(r.code, 1, r.stderr + r.stdout);
        assert.equal(r.json.overall_status, 'FAILED');
        const c = check(r, f.check);
        assert.equal(c.status, 'FAILED', JSON.stringify(r.json.checks.map((x: { name: string; status: string }) => [x.name, x.status])));
        assert.equal(c.figures[f.figure[0]], f.figure[1], JSON.stringify(c));
        if (f.check === 'semantic_search_equivalence') assert.ok(c.figures.semantic_divergence_percentage! > 20, JSON.stringify(c));
        // The decision is in report.json whether or not this run rolls back: a separate rollback job acts on it.
        const json = JSON.parse(await fs.readFile(r.out.replace(/\.md$/, '.json'), 'utf8'));
        assert.equal(json.rollback_triggered, true);
        assert.match(json.rollback_reason, new RegExp(`${f.check} failed`));
        assert.equal(json.rollback_executed, false, 'no --auto-rollback');
        assert.equal(json.rollback_result, null);
        assert.match(await fs.readFile(r.out, 'utf8'),
          new RegExp(`- rollback triggered: YES \\(.*${f.check} failed.*\\)\n- rollback executed: NO \\(run \`chroma-ferry restore --backup .* --target-url .* --yes\`\\)`));
      } finally {
        await restoreGolden();
      }
    });
  }

  it('--auto-rollback after a FAILED gate restores the pre-migration state exactly', async () => {
    // A target that had data before the migration: one collection the migration also writes to.
    const pre = await startChromaServer({ path: path.join(root, 'pre') });
    servers.push(pre);
    await chromaClientFor(pre.url).createCollection({ name: 'acme_humor', embeddingFunction: null, metadata: { owner: 'ops' } });
    await addRecords(pre.url, 'acme_humor', { start: 0, count: 25, dim: DIM, seed: 11, idPrefix: 'old-' });
    const before = await dumpServed(pre.url);
    const m = await runCli(['migrate', '--yes', '--json', '--source-url', source.url, '--target-url', pre.url, '--transform', 'seed-schema',
      '--prefix', 'acme', '--checkpoint-dir', path.join(root, 'cp-pre'), '--log-dir', path.join(root, 'logs')]);
    assert.equal(m.code, 0, m.stderr + m.stdout);
    const c = await chromaClientFor(pre.url).getCollection({ name: 'acme_corpus', embeddingFunction: undefined } as never);
    const ids = (await c.get({ include: [] as never })).ids;
    await c.delete({ ids: ids.slice(0, 60) });
    // The migration's checkpoint gives the transform and the backup to restore.
    const r = await runCli(['validate', '--json', '--yes', '--old-db-url', source.url, '--new-db-url', pre.url, '--checkpoint-dir', path.join(root, 'cp-pre'),
      '--output', path.join(root, 'auto.md'), '--auto-rollback']);
    assert.equal(r.code, 1, r.stderr + r.stdout);
    assert.equal(r.json.rollback_triggered, true);
    assert.match(r.json.rollback_reason, /count_verification failed: Chunk Count Mismatch/);
    assert.equal(r.json.transform_source, 'recorded');
    assert.equal(r.json.rollback_executed, true);
    assert.equal(r.json.rollback_result.backup, m.json.backupFile);
    assert.equal(r.json.rollback_result.ok, true, JSON.stringify(r.json.rollback_result));
    assert.deepEqual(r.json.rollback_result.removed.sort(), ['acme_corpus', 'acme_personality']);
    assert.match(r.json.rollback_result.report_file, /backup\.jsonl\.restore-report\.json$/);
    const after = await dumpServed(pre.url);
    assert.deepEqual([...after.keys()], ['acme_humor']);
    assert.deepEqual(after, before, 'ids, documents, metadatas and embeddings of every record as before the migration');
    const md = await fs.readFile(path.join(root, 'auto.md'), 'utf8');
    assert.match(md, /rollback triggered: YES \(count_verification failed/);
    assert.match(md, /rollback executed: YES, restored from `.*backup\.jsonl`/);
  });

  it('the plain summary says the decision and what this run did, on separate lines', async () => {
    const c = await col('acme_humor');
    const ids = (await c.get({ include: [] as never })).ids;
    await c.delete({ ids: ids.slice(0, 40) });
    try {
      const r = await runCli(['validate', '--old-db-url', source.url, '--new-db-url', target.url, '--backup', backupFile, '--output', path.join(root, 'plain.md')]);
      assert.equal(r.code, 1, r.stderr + r.stdout);
      assert.match(r.stdout, /\n {2}rollback triggered: YES \(count_verification failed: Chunk Count Mismatch[^\n]*\)\n {2}rollback executed: NO/);
      assert.ok(r.stdout.includes(`\n  rollback executed: NO (run chroma-ferry restore --backup ${backupFile} --target-url ${target.url} --yes)\n`), r.stdout);
      assert.match(r.stdout, /transform: seed-schema --prefix acme \(recorded by the migration in .*backup\.jsonl\)/);
    } finally {
      await restoreGolden();
    }
  });

  it('a --transform or --prefix contradicting the migration\'s record: exit 2 naming it, nothing restored', async () => {
    const before = await dumpServed(target.url);
    const cases: [string[], RegExp][] = [
      [['--transform', 'none', '--backup', backupFile],
        /^chroma-ferry: the migration used --transform seed-schema \(recorded in .*backup\.jsonl\); pass --transform seed-schema or omit it$/],
      [['--transform', 'none', '--checkpoint-dir', cpDir],
        /^chroma-ferry: the migration used --transform seed-schema \(recorded in .*migrate-checkpoint\.json\); pass --transform seed-schema or omit it$/],
      [['--transform', 'seed-schema', '--prefix', 'other', '--backup', backupFile],
        /^chroma-ferry: the migration used --prefix acme \(recorded in .*backup\.jsonl\); pass --prefix acme or omit it$/],
    ];
    for (const [flags, message] of cases) {
      const r = await runCli(['validate', '--json', '--yes', '--old-db-url', source.url, '--new-db-url', target.url, '--auto-rollback',
        '--output', path.join(root, 'refused.md'), ...flags]);
      assert.equal(r.code, 2, r.stderr + r.stdout);
      assert.match(r.stderr, message);
    }
    await assert.rejects(fs.access(path.join(root, 'refused.json')), 'no report: refused before the gate ran');
    assert.deepEqual(await dumpServed(target.url), before, 'the migrated target is untouched');
  });

  it('without --transform the gate uses the one the migration recorded (backup header, checkpoint) and PASSES', async () => {
    for (const flags of [['--backup', backupFile], ['--checkpoint-dir', cpDir], ['--checkpoint-dir', cpDir, '--transform', 'seed-schema']]) {
      const out = path.join(root, 'recorded.md');
      const r = await runCli(['validate', '--json', '--old-db-url', source.url, '--new-db-url', target.url, '--output', out, ...flags]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.equal(r.json.overall_status, 'PASSED');
      assert.equal(r.json.transform, 'seed-schema');
      assert.equal(r.json.prefix, 'acme');
      assert.equal(r.json.transform_source, flags.includes('--transform') ? 'flag' : 'recorded');
      assert.equal(r.json.rollback_backup, backupFile, 'the checkpoint names the backup a rollback restores');
      if (!flags.includes('--transform')) {
        assert.match(await fs.readFile(out, 'utf8'), /- transform: `seed-schema` --prefix acme \(recorded by the migration in `.*(backup\.jsonl|migrate-checkpoint\.json)`\)/);
      }
    }
  });

  it('migrate\'s default checkpoint dir in the working directory is read when it is of these databases', async () => {
    const cwd = path.join(root, 'cwd');
    await fs.mkdir(path.join(cwd, 'migration_checkpoints'), { recursive: true });
    await fs.copyFile(path.join(cpDir, 'migrate-checkpoint.json'), path.join(cwd, 'migration_checkpoints', 'migrate-checkpoint.json'));
    const run = (args: string[]) => execa(process.execPath, [CLI, 'validate', '--json', '--output', path.join(root, 'cwd.md'), ...args], { cwd, reject: false, stdin: 'ignore', env: { CI: 'true' } });
    const ok = await run(['--old-db-url', source.url, '--new-db-url', target.url]);
    assert.equal(ok.exitCode, 0, ok.stderr + ok.stdout);
    assert.equal(JSON.parse(ok.stdout).transform_source, 'recorded');
    const refused = await run(['--old-db-url', source.url, '--new-db-url', target.url, '--transform', 'none']);
    assert.equal(refused.exitCode, 2, refused.stderr);
    assert.match(refused.stderr, /the migration used --transform seed-schema/);
    // Another pair of databases: that checkpoint is not this migration's, so it is not used.
    const other = await run(['--old-db-url', golden, '--new-db-url', target.url, '--transform', 'none']);
    assert.equal(other.exitCode, 0, other.stderr + other.stdout);
    assert.match(JSON.parse(other.stdout).notes.join(), /is of a migration .* not used/);
  });

  it('a module transform is recorded by path and sha256: a copy is accepted, another or an edited module refused', async () => {
    const mod = path.join(root, 'to-m.ts');
    await fs.writeFile(mod, 'export default function transform(record: { id: string }, ctx: { collection: { name: string } }) {\n  return { collection: `m_${ctx.collection.name}`, record };\n}\n');
    const exported = path.join(root, 'module-target.jsonl');
    const modCp = path.join(root, 'cp-module');
    const m = await runCli(['migrate', '--yes', '--json', '--source-url', source.url, '--target-url', exported, '--transform', mod,
      '--checkpoint-dir', modCp, '--log-dir', path.join(root, 'logs')]);
    assert.equal(m.code, 0, m.stderr + m.stdout);
    const gateOf = (flags: string[]) => runCli(['validate', '--json', '--old-db-url', source.url, '--new-db-url', exported, '--checkpoint-dir', modCp,
      '--output', path.join(root, 'module.md'), ...flags]);
    const recorded = await gateOf([]);
    assert.equal(recorded.code, 0, recorded.stderr + recorded.stdout);
    assert.equal(recorded.json.transform, mod);
    assert.equal(recorded.json.transform_source, 'recorded');
    const copy = path.join(root, 'copy-of-to-m.ts');
    await fs.copyFile(mod, copy);
    const same = await gateOf(['--transform', copy]);
    assert.equal(same.code, 0, same.stderr + same.stdout);
    const other = path.join(root, 'other.ts');
    await fs.writeFile(other, 'export default function transform(record: unknown) { return { collection: "x", record }; }\n');
    const refused = await gateOf(['--transform', other]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.ok(refused.stderr.includes(`the migration used --transform ${mod} (recorded in `), refused.stderr);
    await fs.appendFile(mod, '// edited after the migration\n');
    for (const flags of [[], ['--transform', mod]]) {
      const edited = await gateOf(flags);
      assert.equal(edited.code, 2, edited.stderr);
      assert.match(edited.stderr, /the module is not the one the migration ran \(sha256 \w{12}, recorded in .*: \w{12}\)/);
    }
  });

  it('usage errors: exit 2, one line', async () => {
    const r = await runCli(['validate', '--json', '--old-db-url', source.url, '--new-db-url', target.url, '--auto-rollback', '--yes', '--output', path.join(root, 'x.md')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--auto-rollback needs --backup FILE/);
    const q = await runCli(['validate', '--json', '--old-db-url', source.url, '--new-db-url', target.url, '--test-queries', path.join(root, 'nope.json'), '--output', path.join(root, 'y.md')]);
    assert.equal(q.code, 2, q.stderr);
    assert.match(q.stderr, /--test-queries .*no such file/);
  });

  it('--test-queries with a where filter', async () => {
    const got = await chromaClientFor(source.url).getCollection({ name: 'acme_humor', embeddingFunction: undefined } as never);
    const rec = await got.get({ limit: 2, include: ['embeddings'] as never });
    const file = path.join(root, 'queries.json');
    await fs.writeFile(file, JSON.stringify(rec.embeddings.map((e) => ({ collection: 'acme_humor', embedding: e, k: 5, where: { category: 'joke' } }))));
    const r = await gate(['--test-queries', file]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(check(r, 'semantic_search_equivalence').figures.queries, 2);
  });
});
