/**
 * `--plan` comes from the steps themselves: every deploy and rollback step is run against a
 * recording host (nothing executed, canned key=value answers), and the remote commands it ran,
 * in order, must be exactly the remote commands its `plan()` prints for the same run. Local
 * commands of a plan (snapshot, pack, verify, the work dir) stand for what a run does in-process.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SqliteManifest } from '../../lib/chroma/sqlite-manifest.ts';
import { backupName, remoteLayout, utcStamp } from '../../lib/remote/layout.ts';
import { openRunDir } from '../../lib/engine/run-dir.ts';
import { CompensationStack } from '../../lib/engine/compensation.ts';
import { UserError } from '../../lib/common/errors.ts';
import { selectSteps } from '../../lib/engine/runner.ts';
import { newState, RunbookStateStore } from '../../lib/engine/state.ts';
import type { AnyStep, PlanPart } from '../../lib/engine/step.ts';
import { HostPutUploader } from '../../lib/transfer/sftp.ts';
import type { DeployCtx, DeployOptions } from '../../runbooks/deploy/context.ts';
import { DEPLOY_STEP_OBJECTS, DEPLOY_STEPS, newDeployCtx, type DeployStep } from '../../runbooks/deploy/index.ts';
import { restoreRecordedSteps } from '../../runbooks/deploy/recorded-run.ts';
import { deployPlanCtx, planOptionsOf } from '../../runbooks/deploy/plan.ts';
import type { RollbackCtx, RollbackOptions } from '../../runbooks/rollback/context.ts';
import { newRollbackCtx, ROLLBACK_STEPS } from '../../runbooks/rollback/index.ts';
import { rollbackPlanCtx } from '../../runbooks/rollback/plan.ts';
import { RecordingHost } from '../helpers/recording-host.ts';

const CLOCK = new Date('2026-03-04T05:06:07Z');
const SHA = 'a'.repeat(64);
const BACKUP = backupName('chroma_db', utcStamp(CLOCK));
const MANIFEST: SqliteManifest = {
  collections: [{ tenant: 'default_tenant', database: 'default_database', name: 'books', id: 'c0ffee', count: 3, dimension: 4, space: 'l2' }],
  totalRecords: 3, schemaVersion: [], pendingWrites: 0,
};

/** The remote commands of a plan part: everything not run on this machine itself. */
function remoteCommands(part: PlanPart): string[] {
  return part.commands.filter((c) => c.via !== 'this machine').map((c) => c.command);
}

let root: string;
before(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-plan-run-'));
  process.env.CHROMA_FERRY_STATE_DIR = path.join(root, 'state');
});
after(() => fs.rm(root, { recursive: true, force: true }));

/** A source of three files, two of them random: two chunks of 1 MiB. */
async function makeSource(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(root, 'source-'));
  await fs.mkdir(path.join(dir, 'segment'));
  await fs.writeFile(path.join(dir, 'chroma.sqlite3'), crypto.randomBytes(900 * 1024));
  await fs.writeFile(path.join(dir, 'segment', 'data_level0.bin'), crypto.randomBytes(700 * 1024));
  await fs.writeFile(path.join(dir, 'segment', 'header.bin'), 'header\n');
  return dir;
}

/** A deploy run against a recording host, every step's commands recorded under its name. */
async function recordedDeploy(o: { earlyUpload: boolean }): Promise<{ host: RecordingHost; ctx: DeployCtx; ran: Map<string, string[]>; options: DeployOptions }> {
  const source = await makeSource();
  const workRoot = await fs.mkdtemp(path.join(root, 'work-'));
  const host = new RecordingHost({
    'check the remote volume': 'missing=\nvolume=dir\nwritable=yes\ndf=/dev/vdb 10000000 1000 9999000 1% /data\nlive=64\t/data/chroma_db\nold=absent\n',
    'take the deploy lock': 'lock=acquired\n',
    'back up the live dir': `entries=4\nsha256=${SHA}\nbytes=2048\n`,
    'list remote backups': `backup 2048 ${SHA} ${BACKUP}\0`,
    'swap the new dir in': 'moved_old=no\nhad_live=yes\n',
  }, { restartCmd: 'systemctl restart chroma' });
  // The state store reads and writes through a host of its own: its files are not the steps' commands.
  const stateHost = new RecordingHost();
  const options: DeployOptions = {
    source, host, uploader: new HostPutUploader(host), volume: '/data', dbDir: 'chroma_db', chunkSize: 1024 * 1024,
    healthTimeoutMs: 1000, keepBackups: 2, uploadConcurrency: 1, workDir: workRoot, output: 'json', signal: new AbortController().signal,
  };
  const runId = 'feedfacecafe';
  const ctx = newDeployCtx(options, { runId, workRoot, store: new RunbookStateStore(stateHost, layoutOf(host), 'deploy'), now: () => CLOCK, earlyUpload: o.earlyUpload });
  host.answer('reassemble and extract', () => `files=${ctx.packed!.fileCount}\nlist_sha256=${ctx.packed!.fileListSha256}\n`);
  await openRunDir(ctx.runDir, source);
  // The manifest step reads a Chroma sqlite (no host involved): its result is given here.
  ctx.snapshotDir = source;
  ctx.manifest = MANIFEST;
  const ran = new Map<string, string[]>();
  for (const step of DEPLOY_STEP_OBJECTS) {
    if (step.name === 'manifest') continue;
    const mark = host.recorded.length;
    const out = await step.run(ctx, () => {});
    assert.ok(out.status === 'done' || out.status === 'skipped', `${step.name} ran`);
    ran.set(step.name, host.since(mark).map((r) => r.command));
  }
  return { host, ctx, ran, options };
}

const layoutOf = (host: RecordingHost) => remoteLayout(host.resolveVolume('/data'), 'chroma_db');

function assertPlanIsRun<C, P>(steps: readonly AnyStep<C, P>[], p: P, ran: Map<string, string[]>): void {
  for (const step of steps) {
    const recorded = ran.get(step.name);
    if (!recorded) continue;
    assert.deepEqual(recorded, remoteCommands(step.plan(p)), `${step.name}: what ran is what the plan prints`);
  }
}

describe('deploy --plan is what the steps run', () => {
  it('each step, run against a recording host, runs exactly the remote commands its plan() prints', async () => {
    const { ctx, ran, options } = await recordedDeploy({ earlyUpload: false });
    const p = deployPlanCtx(ctx, planOptionsOf(options));
    assertPlanIsRun(DEPLOY_STEP_OBJECTS, p, ran);

    // Not vacuous: every step that reaches the remote ran something, and the known drift is gone.
    const chunks = ctx.packed!.chunks.length;
    assert.equal(chunks, 2);
    assert.deepEqual(Object.fromEntries([...ran].map(([name, cmds]) => [name, cmds.length])), {
      preflight: 4, backup: 2, package: 0, upload: 1 + 2 * chunks, reassemble: 1, swap: 1, restart: 1, verify: 1, cleanup: 1,
    });
    const verifyPlan = remoteCommands(DEPLOY_STEP_OBJECTS.find((s) => s.name === 'verify')!.plan(p));
    assert.match(verifyPlan.join('\n'), /\.ferry\/manifest-chroma_db\.json/, 'the plan keeps the deployed manifest as the run does');
    assert.deepEqual(remoteCommands(DEPLOY_STEP_OBJECTS.find((s) => s.name === 'manifest')!.plan(p)), [], 'the manifest step is local only');
  });

  it('every recorded result survives the state file (JSON) and is read back as it was saved', async () => {
    const { ctx } = await recordedDeploy({ earlyUpload: false });
    const withResult = DEPLOY_STEP_OBJECTS.filter((s) => s.result);
    assert.equal(withResult.length, DEPLOY_STEP_OBJECTS.length, 'every step records a result (an empty one marks it done for --from)');
    for (const step of withResult) {
      const saved = step.result!.save(ctx);
      assert.deepEqual(step.result!.parse(JSON.parse(JSON.stringify(saved))), saved, step.name);
    }
  });

  it('a damaged recorded result is refused in one line naming what to do, before anything runs', async () => {
    const { ctx, options } = await recordedDeploy({ earlyUpload: false });
    const damaged: [DeployStep, unknown, DeployStep, RegExp][] = [
      ['manifest', { manifest: { collections: 'books' } }, 'package', /recorded manifest result .*not valid; start again with --from manifest/],
      ['package', { deployId: '../../etc' }, 'upload', /recorded package result .*not valid; start again with --from manifest/],
      ['swap', { hadLive: 'yes' }, 'restart', /recorded swap result .*not valid/],
      ['backup', 'nonsense', 'package', /recorded backup result is not valid/],
    ];
    for (const [step, result, from, message] of damaged) {
      const state = newState('deploy', ctx.runId, options.host.label, ctx.layout.live, DEPLOY_STEPS);
      for (const name of DEPLOY_STEPS.slice(0, DEPLOY_STEPS.indexOf(from))) {
        state.steps[name] = 'done';
        state.results[name] = DEPLOY_STEP_OBJECTS.find((s) => s.name === name)!.result!.save(ctx);
      }
      state.results[step] = result;
      const fresh = { ...ctx, stack: new CompensationStack() };
      await assert.rejects(restoreRecordedSteps(fresh, DEPLOY_STEP_OBJECTS, state, selectSteps(DEPLOY_STEPS, { from }, ['preflight']), 'no local state'),
        (e: unknown) => e instanceof UserError && message.test(e.message), `${step}: ${JSON.stringify(result)}`);
      assert.equal(fresh.stack.size, 0, 'no undo armed for a refused run');
    }
  });

  it('with chunks sent while packing, package + upload run what their plans print, in order', async () => {
    const { ctx, ran, options } = await recordedDeploy({ earlyUpload: true });
    const p = deployPlanCtx(ctx, planOptionsOf(options));
    const planOf = (name: string) => remoteCommands(DEPLOY_STEP_OBJECTS.find((s) => s.name === name)!.plan(p));
    assert.deepEqual([...ran.get('package')!, ...ran.get('upload')!], [...planOf('package'), ...planOf('upload')]);
    assert.ok(ran.get('package')!.length > 0, 'the chunks went out during the package step');
  });
});

describe('rollback --plan is what the steps run', () => {
  for (const backup of [undefined, BACKUP]) {
    it(`each step runs exactly the remote commands its plan() prints (${backup ? '--backup NAME' : 'NAME.old'})`, async () => {
      const host = new RecordingHost({
        'check the remote volume': 'missing=\nvolume=dir\nwritable=yes\ndf=/dev/vdb 10000000 1000 9999000 1% /data\nlive=64\t/data/chroma_db\nold=32\t/data/chroma_db.old\n',
        'inspect the volume for a rollback': 'live=yes\nold=yes\n',
        'list remote backups': `backup 2048 ${SHA} ${BACKUP}\0`,
        'take the deploy lock': 'lock=acquired\n',
        'verify and extract the backup': 'files=3\n',
        'put the previous data back (journaled)': 'live_id=archive:deployed@r1\nold_id=\nnext_id=old-before:r0\nphase=done\nworker_rc=0\n',
      }, { restartCmd: 'systemctl restart chroma' });
      const o: RollbackOptions = { host, volume: '/data', dbDir: 'chroma_db', backup, healthTimeoutMs: 1000, output: 'json', signal: new AbortController().signal };
      const ctx: RollbackCtx = newRollbackCtx(o, { runId: 'abcdef012345', now: () => CLOCK, deployState: new RunbookStateStore(new RecordingHost(), layoutOf(host), 'deploy') });
      const ran = new Map<string, string[]>();
      for (const step of ROLLBACK_STEPS) {
        const mark = host.recorded.length;
        await step.run(ctx, () => {});
        ran.set(step.name, host.since(mark).map((r) => r.command));
      }
      assertPlanIsRun(ROLLBACK_STEPS, rollbackPlanCtx(ctx, o), ran);
      assert.deepEqual(Object.fromEntries([...ran].map(([name, cmds]) => [name, cmds.length])), {
        preflight: backup ? 6 : 4, stage: backup ? 2 : 0, swap: 1, restart: 1, verify: 2, cleanup: 2,
      });
    });
  }
});
