/**
 * `deploy --plan`: the deploy runbook as the commands a person would run by hand, step by step,
 * generated from the same script builders the runbook runs (lib/remote-scripts.ts) and rendered
 * by the same host code (RemoteHost.renderRun / renderPut / renderRestart). Nothing is executed on
 * any host and nothing is written: the archive's sha256 and chunk list are computed by packing
 * the source in memory, so the plan can name every chunk and the checks they must pass.
 *
 * The text form (lib/plan.ts) is a POSIX sh script; `sh -e PLAN` runs the deploy.
 */
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { packInputId, packToChunks } from '../lib/archive/pack.ts';
import { readSqliteManifest } from '../lib/chroma/sqlite-manifest.ts';
import { cliArgv, planCommand, restartPlanStep, type PlanCommand, type PlanStep, type RunbookPlan } from '../lib/plan.ts';
import { backupName, incomingDir, remoteLayout, trashDir, utcStamp } from '../lib/remote-layout.ts';
import {
  acceptChunkScript, backupScript, cleanupScript, incomingStateScript, lockScript, probeScript, reassembleScript, swapScript, unlockScript,
} from '../lib/remote-scripts.ts';
import { renderArgv, type RemoteScript } from '../lib/shell.ts';
import { archiveDataId, recordVerifiedScript, writeDataIdScript } from '../lib/volume/data-id.ts';
import { newRunId, parseWorkRoot, runDirOf } from '../lib/run-dir.ts';
import { DEFAULT_RESTART_TIMEOUT_MS, restartLogFile } from '../lib/hosts/restart.ts';
import { DEPLOY_STEPS, STEP_TITLES, STEP_UNDO, type DeployOptions, type DeployStep } from './deploy-chromadb.ts';

export interface DeployPlan extends RunbookPlan {
  runbook: 'deploy';
  source: string;
  /** The run's own dir, WORK/chroma-ferry-<run id>: the only local dir the plan creates and removes. */
  workDir: string;
  /** Where the target came from when --target was not given (e.g. ./fly.toml). */
  targetSource?: string;
  expected: { archiveSha256: string; archiveBytes: number; chunks: number; fileCount: number; collections: number; records: number };
}

/** The deploy's own options, as far as a plan needs them. */
export type PlanOptions = Pick<DeployOptions, 'source' | 'host' | 'uploader' | 'volume' | 'dbDir' | 'chunkSize' | 'healthUrl' | 'healthTimeoutMs' | 'workDir' | 'restartTimeoutMs'> & {
  signal?: AbortSignal;
  /** Volume snapshot before the backup (fly: `--snapshot`). */
  snapshot?: boolean;
  /** Where the target came from when --target was not given (e.g. ./fly.toml). */
  targetSource?: string;
};

export async function planDeploy(o: PlanOptions): Promise<DeployPlan> {
  const workRoot = parseWorkRoot(o.workDir, o.source);
  const runId = newRunId();
  const layout = remoteLayout(o.host.resolveVolume(o.volume), o.dbDir);
  const work = runDirOf(workRoot, runId);
  const snapshotDir = path.join(work, 'snapshot');
  const chunksDir = path.join(work, 'chunks');
  const manifestFile = path.join(work, 'manifest.json');

  // Read-only: counts from the source's sqlite, the archive hashed in memory (no file written).
  const manifest = readSqliteManifest(o.source);
  const pack = await packToChunks(o.source, path.join(os.tmpdir(), `chroma-ferry-plan-${runId}`), o.chunkSize, { hashOnly: true, signal: o.signal });
  const fileListSha256 = crypto.createHash('sha256').update(pack.fileList.map((f) => `${f}\n`).join('')).digest('hex');
  const deployId = await packInputId(o.source, o.chunkSize, undefined, o.signal);
  const incoming = incomingDir(layout, deployId);
  const trash = trashDir(layout, deployId);
  const backup = backupName(layout.name, utcStamp());
  const nextId = archiveDataId(pack.archiveSha256, runId);
  const owner = JSON.stringify({ runId, command: 'deploy (by hand, from --plan)', user: os.userInfo().username, host: os.hostname(), startedAt: new Date().toISOString() });

  const cli = cliArgv();
  const local = (what: string, argv: string[], expect?: string): PlanCommand => ({ what, via: 'this machine', command: renderArgv(argv), expect });
  const remote = (script: RemoteScript, expect?: string): PlanCommand => planCommand(script.title, o.host.renderRun(script), o.host.label, expect);

  const steps: Record<DeployStep, Pick<PlanStep, 'commands' | 'notes'>> = {
    preflight: {
      commands: [
        remote(probeScript(layout), `missing= is empty, volume=dir, writable=yes; df shows free space for about ${Math.ceil((pack.inputBytes * 2.05) / 1048576)} MiB plus the live dir`),
        remote(lockScript(layout, owner), 'lock=acquired (otherwise another run holds the lock: it exits non-zero, stop here)'),
        local('create the local work dir (this run\'s own dir in the work root)', ['mkdir', '-p', work]),
      ],
      notes: [],
    },
    manifest: {
      commands: [local('consistent snapshot of the source and its per-collection counts', [...cli, 'snapshot', '--source', o.source, '--out', snapshotDir, '--manifest', manifestFile],
        `${manifest.collections.length} collections, ${manifest.totalRecords} records`)],
      notes: [],
    },
    backup: {
      commands: [remote(backupScript(layout, backup), 'sha256= and bytes= of the backup (or skipped=no-live-dir on a first deploy)')],
      notes: [
        ...(o.snapshot ? ['fly --snapshot: also take a volume snapshot first: fly volumes snapshots create VOLUME_ID (fly volumes list -a APP names it)'] : []),
        `prune: keep the newest backups in ${layout.backups} (chroma-ferry backups --target ${o.host.label} lists them)`,
      ],
    },
    package: {
      commands: [local('tar + gzip the snapshot into checksummed chunks', [...cli, 'pack', '--dir', snapshotDir, '--out', chunksDir, '--chunk-size', String(o.chunkSize)],
        `archive_sha256=${pack.archiveSha256} chunks=${pack.chunks.length} (another sha256: the source changed since this plan; the reassemble check will refuse it)`)],
      notes: [],
    },
    upload: {
      commands: [
        remote(incomingStateScript(incoming)),
        ...pack.chunks.flatMap((ch) => {
          const partial = path.posix.join(incoming, `.${ch.name}.partial`);
          const final = path.posix.join(incoming, ch.name);
          return [
            ...o.uploader.render(path.join(chunksDir, ch.name), partial).map((r) => planCommand(`upload ${ch.name}`, r, o.host.label)),
            remote(acceptChunkScript(partial, final, ch.size, ch.sha256)),
          ];
        }),
      ],
      notes: o.uploader.method === 's3'
        ? ['--upload s3: the bridge\'s presigned URLs are made at run time and never printed; by hand, the chunks go by the host\'s own put']
        : [],
    },
    reassemble: {
      commands: [
        remote(reassembleScript(layout, incoming, pack.archiveSha256, pack.chunks.map((ch) => ch.name)), `files=${pack.fileList.length} list_sha256=${fileListSha256}`),
        remote(writeDataIdScript(layout.next, nextId)),
      ],
      notes: [],
    },
    swap: {
      commands: [remote(swapScript(layout, trash), 'moved_old= and had_live= lines (keep them: the undo needs them)')],
      notes: [],
    },
    restart: restartPlanStep(o.host, { timeoutMs: o.restartTimeoutMs ?? DEFAULT_RESTART_TIMEOUT_MS, logFile: restartLogFile(layout, runId) }),
    verify: {
      commands: o.healthUrl
        ? [local('heartbeat and every collection count equal to the manifest', [...cli, 'verify', '--health-url', o.healthUrl, '--manifest', manifestFile,
            '--timeout', `${Math.round(o.healthTimeoutMs / 1000)}s`, '--samples', '0'], 'healthy'), remote(recordVerifiedScript(layout, nextId))]
        : [remote(recordVerifiedScript(layout, nextId))],
      notes: o.healthUrl ? [] : ['no --health-url: check the server by hand (chroma-ferry verify --health-url URL --manifest MANIFEST)'],
    },
    cleanup: {
      commands: [remote(cleanupScript(incoming, trash)), remote(unlockScript(layout, runId)), local('remove the local work dir (this run\'s own dir only)', ['rm', '-rf', work])],
      notes: [],
    },
  };

  return {
    runbook: 'deploy', runId, generatedAt: new Date().toISOString(), source: o.source, target: o.host.label, liveDir: layout.live, workDir: work,
    ...(o.targetSource ? { targetSource: o.targetSource } : {}),
    header: [
      `${o.source} -> ${o.host.label} ${layout.live}`,
      ...(o.targetSource ? [`target ${o.host.label} from ${o.targetSource}`] : []),
      `expected: archive sha256 ${pack.archiveSha256}, ${pack.chunks.length} chunks, ${pack.fileList.length} files, ` +
        `${manifest.collections.length} collections, ${manifest.totalRecords} records`,
    ],
    expected: {
      archiveSha256: pack.archiveSha256, archiveBytes: pack.archiveBytes, chunks: pack.chunks.length, fileCount: pack.fileList.length,
      collections: manifest.collections.length, records: manifest.totalRecords,
    },
    steps: DEPLOY_STEPS.map((name) => ({ name, title: STEP_TITLES[name], undo: STEP_UNDO[name], ...steps[name] })),
  };
}
