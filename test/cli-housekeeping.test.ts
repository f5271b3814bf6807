/**
 * What users see of the CLI around the commands: `--version`; relative paths given through
 * `npm run` resolve in the directory npm was run from; each command accepts and lists only the
 * options it uses; the default output paths are ignored by git and none is committed.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { REPO, runCli, sampleDbCopy } from './helpers/deploy-env.ts';

const pkg = JSON.parse(await fs.readFile(path.join(REPO, 'package.json'), 'utf8')) as { version: string };

/** `npm run SCRIPT -- ARGS` typed in `dir`, a directory outside the package (npm finds it through --prefix). */
function npmRun(dir: string, script: string, args: string[]) {
  return execa('npm', ['--prefix', REPO, 'run', '--silent', script, '--', ...args], { cwd: dir, reject: false, env: { CI: 'true' } });
}

/** The lines that list options in a command's --help. */
async function helpOptions(command: string[]): Promise<string[]> {
  const r = await runCli([...command, '--help']);
  assert.equal(r.code, 0, r.stderr);
  return [...r.stdout.matchAll(/^ {2}(?:-\w, )?(--[\w-]+)/gm)].map((m) => m[1]!);
}

describe('the CLI around its commands', () => {
  let dir: string;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-user-dir-'));
  });
  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('--version prints package.json\'s version', async () => {
    for (const flag of ['--version', '-V']) {
      const r = await runCli([flag]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, pkg.version);
    }
  });

  it('npm run: relative paths and default output dirs resolve where npm was run, not in the package', async () => {
    const repoBefore = await fs.readdir(REPO);
    await fs.writeFile(path.join(dir, 'in.jsonl'), [
      { type: 'chroma-ferry-export', version: 1, createdAt: '2026-01-01T00:00:00.000Z' },
      { type: 'collection', name: 'books', space: 'l2', metadata: null },
      { type: 'record', collection: 'books', id: 'a', embedding: [1, 2], document: 'x', metadata: null },
      { type: 'record', collection: 'books', id: 'b', embedding: [3, 4], document: 'y', metadata: null },
    ].map((l) => `${JSON.stringify(l)}\n`).join(''));
    const r = await npmRun(dir, 'migrate:chromadb', ['--source-url', './in.jsonl', '--target-url', './out.jsonl', '--yes', '--json']);
    assert.equal(r.exitCode, 0, r.stderr + r.stdout);
    assert.equal((await fs.readFile(path.join(dir, 'out.jsonl'), 'utf8')).split('\n').filter((l) => l.includes('"record"')).length, 2);
    const logs = await fs.readdir(path.join(dir, 'migration_logs'));
    assert.equal(logs.length, 1, 'the default --log-dir is in the user\'s directory');
    assert.ok((await fs.readdir(path.join(dir, 'migration_checkpoints'))).includes('migrate-checkpoint.json'), 'so is the default --checkpoint-dir');
    assert.deepEqual(await fs.readdir(REPO), repoBefore, 'nothing written into the package');

    // deploy: `cd sub && npm run deploy:chromadb -- --source ./db` (here as a plan: nothing runs).
    await sampleDbCopy(path.join(dir, 'db'), [{ name: 'notes', count: 20, dim: 8 }]);
    await fs.mkdir(path.join(dir, 'volume', 'data'), { recursive: true });
    const plan = await npmRun(dir, 'deploy:chromadb', ['--source', './db', '--target', `local:${path.join(dir, 'volume')}`, '--no-verify', '--plan', '--json']);
    assert.equal(plan.exitCode, 0, plan.stderr + plan.stdout);
    assert.equal(JSON.parse(plan.stdout).source, path.join(dir, 'db'), 'the plan reads the source in the user\'s directory');
  });

  it('each volume command lists and accepts only the options it uses', async () => {
    const restartOnly = ['--restart-cmd', '--health-url', '--health-timeout'];
    const commands = [['backups'], ['backups', 'pull'], ['backups', 'push'], ['backup'], ['unlock'], ['rollback']];
    const listed = new Map(await Promise.all(commands.map(async (c) => [c.join(' '), await helpOptions(c)] as const)));
    for (const command of ['backups', 'backups pull', 'backups push', 'backup']) {
      const flags = listed.get(command)!;
      assert.ok(flags.includes('--target') && flags.includes('--db-dir') && flags.includes('--json'), `${command}: ${flags}`);
      for (const flag of [...restartOnly, '--yes']) assert.ok(!flags.includes(flag), `${command} --help lists ${flag}`);
    }
    assert.deepEqual(listed.get('unlock')!.sort(), ['--config', '--help', '--machine', '--ssh-key', '--ssh-option', '--target', '--volume', '--yes']);
    for (const flag of ['--target', '--db-dir', '--json', '--yes', ...restartOnly]) assert.ok(listed.get('rollback')!.includes(flag), `rollback keeps ${flag}`);

    const volume = await fs.mkdtemp(path.join(dir, 'vol-'));
    await fs.mkdir(path.join(volume, 'data', '.ferry', 'lock'), { recursive: true });
    const target = ['--target', `local:${volume}`, '--volume', '/data'];
    const refused: [string[], string][] = [
      [['backups', '--restart-cmd', 'systemctl restart chroma'], '--restart-cmd'],
      [['backups', '--yes'], '--yes'],
      [['backups', 'pull', 'latest', '--to', dir, '--health-url', 'http://127.0.0.1:1'], '--health-url'],
      [['unlock', '--yes', '--health-url', 'http://127.0.0.1:1'], '--health-url'],
      [['unlock', '--yes', '--db-dir', 'chroma_db'], '--db-dir'],
    ];
    await Promise.all(refused.map(async ([args, flag]) => {
      const r = await runCli([...args, ...target]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr, `chroma-ferry: unknown option '${flag}'`);
    }));
    await fs.access(path.join(volume, 'data', '.ferry', 'lock'));
    const unlocked = await runCli(['unlock', '--yes', ...target]);
    assert.equal(unlocked.code, 0, unlocked.stderr);
    assert.equal(unlocked.stdout, `removed ${path.join(volume, 'data', '.ferry', 'lock')}`);
    await assert.rejects(fs.access(path.join(volume, 'data', '.ferry', 'lock')));
  });

  it('the default output paths of migrate and validate are ignored by git, and none is committed', async () => {
    const [migrate, validate] = await Promise.all(['migrate', 'validate'].map(async (c) => (await runCli([c, '--help'])).stdout.replace(/\s+/g, ' ')));
    const defaultOf = (help: string, flag: string) => {
      const m = new RegExp(`${flag} <\\w+> .*?\\(default: "([^"]+)"\\)`).exec(help);
      assert.ok(m, `${flag} has a default`);
      return m[1]!;
    };
    const report = defaultOf(validate!, '--output');
    const outputs = [
      path.join(defaultOf(migrate!, '--log-dir'), 'migrate-20260101T000000-abcdef.jsonl'),
      path.join(defaultOf(migrate!, '--checkpoint-dir'), 'migrate-checkpoint.json'),
      report, report.replace(/\.md$/, '.json'),
    ];
    for (const f of outputs) {
      for (const where of [f, path.join('sub', f)]) {
        const r = await execa('git', ['check-ignore', '-q', '--no-index', where], { cwd: REPO, reject: false });
        assert.equal(r.exitCode, 0, `${where} is not ignored by .gitignore`);
      }
    }
    const tracked = (await execa('git', ['ls-files', '-z'], { cwd: REPO })).stdout.split('\0').filter(Boolean);
    const committed = await execa('git', ['check-ignore', '--no-index', '--stdin'], { cwd: REPO, input: tracked.join('\n'), reject: false });
    assert.equal(committed.stdout, '', 'tracked files that .gitignore covers');
  });
});
