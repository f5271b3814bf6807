/**
 * Locations are never guessed: a server address without its scheme is refused with the URL it
 * meant (and nothing is created in the current directory), a new persist dir target is created
 * only when named as a path (and the summary says so), a target taken from fly.toml says where
 * it came from (plans, summaries, error lines), and a volume or db dir that does not exist is a
 * one-line refusal rather than an empty answer.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { APP, makeFakeFly, type FakeFly } from './helpers/fake-fly.ts';
import { CLI, makeDeployEnv, runCli, TEST_STATE_DIR, type CliResult, type DeployEnv } from './helpers/deploy-env.ts';

/** The CLI run from `cwd` (no terminal, CI=true). */
async function runIn(cwd: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const r = await execa(process.execPath, [CLI, ...args], {
    cwd, reject: false, stdin: 'ignore', env: { CI: 'true', CHROMA_FERRY_STATE_DIR: TEST_STATE_DIR, ...env }, timeout: 240_000,
  });
  const out: CliResult = { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  if (args.includes('--json')) {
    try { out.json = JSON.parse(out.stdout); } catch { /* the test will say */ }
  }
  return out;
}

function assertOneLineRefusal(r: CliResult, re: RegExp): void {
  assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}; stdout: ${r.stdout}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
  assert.match(lines[0]!, re);
}

describe('migrate targets are named, not guessed', () => {
  let cwd: string;
  let aux: string;
  const exportFile = 'export.jsonl';
  before(async () => {
    cwd = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-locations-'));
    aux = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-locations-aux-'));
    const lines = [JSON.stringify({ type: 'chroma-ferry-export', version: 1, createdAt: new Date().toISOString() }),
      JSON.stringify({ type: 'collection', name: 'notes', space: 'l2', metadata: null })];
    for (let i = 0; i < 20; i++) lines.push(JSON.stringify({ type: 'record', collection: 'notes', id: `n${i}`, embedding: [i, 1, 2, 3], document: `note ${i}`, metadata: { i } }));
    await fs.writeFile(path.join(cwd, exportFile), `${lines.join('\n')}\n`);
  });
  after(async () => {
    await fs.rm(cwd, { recursive: true, force: true });
    await fs.rm(aux, { recursive: true, force: true });
  });

  const migrateIn = (target: string, extra: string[] = []) => runIn(cwd, ['migrate', '--yes', '--source-url', exportFile, '--target-url', target,
    '--checkpoint-dir', path.join(aux, `cp-${Math.random().toString(36).slice(2)}`), '--log-dir', path.join(aux, 'logs'), ...extra]);

  it('HOST:PORT and a bare host name are refused with the URL they meant; nothing is created here', async () => {
    assertOneLineRefusal(await migrateIn('localhost:18203'), /--target-url localhost:18203: did you mean http:\/\/localhost:18203\?/);
    assertOneLineRefusal(await migrateIn('chroma.example.com'), /did you mean http:\/\/chroma\.example\.com:8000\?/);
    assertOneLineRefusal(await migrateIn('newdb'), /--target-url newdb: .*name it as a path: \.\/newdb/);
    const r = await runIn(cwd, ['validate', '--old-db-url', '127.0.0.1:8000', '--new-db-url', exportFile]);
    assertOneLineRefusal(r, /--old-db-url 127\.0\.0\.1:8000: did you mean http:\/\/127\.0\.0\.1:8000\?/);
    assert.deepEqual(await fs.readdir(cwd), [exportFile], 'no directory was created in the current directory');
  });

  it('a new persist dir named as a path is created, and the summary says so', async () => {
    const r = await migrateIn('./newdb');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const dir = path.join(await fs.realpath(cwd), 'newdb');
    assert.match(r.stdout, new RegExp(`^  created new persist dir ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
    await fs.access(path.join(dir, 'chroma.sqlite3'));
    // Into it again: it exists now, so nothing is created and the summary does not say so.
    const again = await migrateIn('./newdb', ['--json']);
    assert.equal(again.code, 0, again.stderr + again.stdout);
    assert.equal(again.json.createdDir, undefined);
  });
});

describe('--target without its kind', () => {
  it('HOST:PORT and USER@HOST:PORT suggest ssh://, an absolute path local:', async () => {
    const src = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-loc-src-'));
    await fs.writeFile(path.join(src, 'chroma.sqlite3'), '');
    const cases: [string, RegExp][] = [
      ['127.0.0.1:22022', /--target 127\.0\.0\.1:22022: did you mean ssh:\/\/USER@127\.0\.0\.1:22022\?/],
      ['deploy@db1.example.com:2222', /did you mean ssh:\/\/deploy@db1\.example\.com:2222\?/],
      ['/srv/chroma', /did you mean local:\/srv\/chroma\?/],
    ];
    try {
      for (const [target, re] of cases) {
        assertOneLineRefusal(await runCli(['deploy', '--source', src, '--target', target, '--yes']), re);
        assertOneLineRefusal(await runCli(['backups', '--target', target]), re);
      }
    } finally {
      await fs.rm(src, { recursive: true, force: true });
    }
  });
});

describe('a volume or db dir that does not exist is refused, not listed as empty', () => {
  let root: string;
  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-loc-vol-'));
    await fs.mkdir(path.join(root, 'data', 'chroma_db'), { recursive: true });
  });
  after(async () => fs.rm(root, { recursive: true, force: true }));

  it('backups, unlock, backups pull, verify --target: exit 2, one line; a real volume without backups still says so', async () => {
    const typo = path.join(root, 'typo');
    assertOneLineRefusal(await runCli(['backups', '--target', `local:${typo}`]), /volume .*typo\/data does not exist on local:/);
    assertOneLineRefusal(await runCli(['backups', '--target', `local:${root}`, '--db-dir', 'typo_db']), /no Chroma dir .*\/data\/typo_db on local:.* and no backups of typo_db; check --db-dir/);
    assertOneLineRefusal(await runCli(['unlock', '--target', `local:${typo}`, '--yes']), /volume .*typo\/data does not exist/);
    assertOneLineRefusal(await runCli(['backups', 'pull', 'latest', '--to', path.join(root, 'pulled'), '--target', `local:${typo}`]), /volume .* does not exist/);
    assertOneLineRefusal(await runCli(['verify', '--health-url', 'http://127.0.0.1:9', '--target', `local:${typo}`]), /volume .*typo\/data does not exist/);
    const ok = await runCli(['backups', '--target', `local:${root}`]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^no backups in /);
    await assert.rejects(fs.access(typo), 'nothing was created');
  });
});

describe('a target taken from fly.toml says so', () => {
  let env: DeployEnv;
  let fly: FakeFly;
  let cwd: string;
  before(async () => {
    env = await makeDeployEnv();
    fly = await makeFakeFly(env);
    cwd = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-loc-fly-'));
    await fs.writeFile(path.join(cwd, 'fly.toml'), `app = "${APP}"\n[mounts]\n  source = "chroma_data"\n  destination = ${JSON.stringify(env.volumeOnDisk)}\n`);
  });
  after(async () => {
    await env?.stop();
    await fs.rm(fly?.dir ?? '', { recursive: true, force: true });
    await fs.rm(cwd ?? '', { recursive: true, force: true });
  });

  const line = `target fly:${APP} from ./fly.toml`;

  it('deploy --plan and rollback --plan: a header line, and targetSource in --json', async () => {
    const plan = await runIn(cwd, ['deploy', '--source', env.source, '--plan'], fly.env);
    assert.equal(plan.code, 0, plan.stderr);
    assert.ok(plan.stdout.split('\n').includes(`# ${line}`), plan.stdout.slice(0, 600));
    const json = await runIn(cwd, ['deploy', '--source', env.source, '--plan', '--json'], fly.env);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(json.json.targetSource, './fly.toml');
    const rb = await runIn(cwd, ['rollback', '--plan'], fly.env);
    assert.equal(rb.code, 0, rb.stderr);
    assert.ok(rb.stdout.split('\n').includes(`# ${line}`), rb.stdout.slice(0, 600));
  });

  it('error lines name it', async () => {
    const r = await runIn(cwd, ['backups', '--db-dir', 'typo_db'], fly.env);
    assertOneLineRefusal(r, new RegExp(`no Chroma dir .* and no backups of typo_db; check --db-dir and --volume \\(${line}\\)$`));
    const noYes = await runIn(cwd, ['deploy', '--source', env.source], fly.env);
    assertOneLineRefusal(noYes, new RegExp(`on fly:${APP} from \\./fly\\.toml with .*refusing without a terminal`));
  });

  it('the deploy summary (text) and the rollback summary (--json) name it', async () => {
    const d = await runIn(cwd, ['deploy', '--source', env.source, '--health-timeout', '30s', '--yes'], fly.env);
    assert.equal(d.code, 0, d.stderr + d.stdout);
    assert.ok(d.stdout.split('\n').includes(`  ${line}`), d.stdout);
    const rb = await runIn(cwd, ['rollback', '--health-timeout', '30s', '--yes', '--json'], fly.env);
    assert.equal(rb.code, 0, rb.stderr + rb.stdout);
    assert.equal(rb.json.targetSource, './fly.toml');
    assert.equal(rb.json.target, `fly:${APP}`);
  });
});
