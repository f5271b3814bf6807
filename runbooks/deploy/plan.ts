/**
 * `deploy --plan`: the deploy runbook as the commands a person would run by hand, step by step:
 * each step's own `plan()`, which builds its remote scripts with the same calls its `run()` makes
 * and renders them by the same host code (RemoteHost.renderRun / renderPut / renderRestart).
 * Nothing is executed on any host and nothing is written: the archive's sha256 and chunk list are
 * computed by packing the source in memory, so the plan can name every chunk and the checks they
 * must pass.
 *
 * The text form (lib/engine/plan.ts) is a POSIX sh script; `sh -e PLAN` runs the deploy.
 */
import os from 'node:os';
import path from 'node:path';
import { packInputId, packToChunks } from '../../lib/archive/pack.ts';
import { readSqliteManifest } from '../../lib/chroma/sqlite-manifest.ts';
import { cliArgv, planCommand, type RunbookPlan } from '../../lib/engine/plan.ts';
import { remoteLayout } from '../../lib/remote/layout.ts';
import { newRunId, parseWorkRoot, runDirOf } from '../../lib/engine/run-dir.ts';
import { planStep } from '../../lib/engine/step.ts';
import { renderArgv } from '../../lib/remote/shell.ts';
import { lockOwnerRecord } from '../../lib/volume/lock.ts';
import type { DeployFacts, DeployOptions, DeployPlanCtx, PlanOptions } from './context.ts';
import { DEPLOY_STEP_OBJECTS } from './index.ts';
import { fileListSha256 } from './steps/package.ts';

export type { PlanOptions } from './context.ts';

export interface DeployPlan extends RunbookPlan {
  runbook: 'deploy';
  source: string;
  /** The run's own dir, WORK/chroma-ferry-<run id>: the only local dir the plan creates and removes. */
  workDir: string;
  /** Where the target came from when --target was not given (e.g. ./fly.toml). */
  targetSource?: string;
  expected: { archiveSha256: string; archiveBytes: number; chunks: number; fileCount: number; collections: number; records: number };
}

export async function planDeploy(o: PlanOptions): Promise<DeployPlan> {
  const workRoot = parseWorkRoot(o.workDir, o.source);
  const runId = newRunId();
  const layout = remoteLayout(o.host.resolveVolume(o.volume), o.dbDir);
  const now = new Date();

  // Read-only: counts from the source's sqlite, the archive hashed in memory (no file written).
  const manifest = readSqliteManifest(o.source);
  const pack = await packToChunks(o.source, path.join(os.tmpdir(), `chroma-ferry-plan-${runId}`), o.chunkSize, { hashOnly: true, signal: o.signal });
  const deployId = await packInputId(o.source, o.chunkSize, undefined, o.signal);
  const facts: DeployFacts = {
    o, runId, layout, runDir: runDirOf(workRoot, runId), now: () => now, manifest,
    lockOwner: lockOwnerRecord(runId, 'deploy (by hand, from --plan)', { pid: null, startedAt: now }),
    packed: {
      deployId, sha256: pack.archiveSha256, bytes: pack.archiveBytes, inputBytes: pack.inputBytes,
      chunks: pack.chunks.map((ch) => ({ name: ch.name, size: ch.size, sha256: ch.sha256 })),
      fileCount: pack.fileList.length, fileListSha256: fileListSha256(pack.fileList),
    },
  };
  const p = deployPlanCtx(facts, o);
  return {
    runbook: 'deploy', runId, generatedAt: now.toISOString(), source: o.source, target: o.host.label, liveDir: layout.live, workDir: p.runDir,
    ...(o.targetSource ? { targetSource: o.targetSource } : {}),
    header: [
      `${o.source} -> ${o.host.label} ${layout.live}`,
      ...(o.targetSource ? [`target ${o.host.label} from ${o.targetSource}`] : []),
      `expected: archive sha256 ${p.packed.sha256}, ${p.packed.chunks.length} chunks, ${p.packed.fileCount} files, ` +
        `${manifest.collections.length} collections, ${manifest.totalRecords} records`,
    ],
    expected: {
      archiveSha256: p.packed.sha256, archiveBytes: p.packed.bytes, chunks: p.packed.chunks.length, fileCount: p.packed.fileCount,
      collections: manifest.collections.length, records: manifest.totalRecords,
    },
    steps: DEPLOY_STEP_OBJECTS.map((s) => planStep(s, p)),
  };
}

/** The plan options of a run's options (what a plan of the same deploy would be given). */
export function planOptionsOf(o: DeployOptions): PlanOptions {
  return { ...o, snapshot: Boolean(o.snapshot) };
}

/**
 * The plan's view of a deploy whose facts are all known (a plan's, or a run's once its steps
 * ran): the local work files named in the run's own dir, commands rendered for a person.
 */
export function deployPlanCtx(f: DeployFacts, o: PlanOptions): DeployPlanCtx {
  if (!f.manifest || !f.packed) throw new Error('a plan needs the manifest and the packed archive');
  return {
    ...f, o, manifest: f.manifest, packed: f.packed, cli: cliArgv(),
    snapshotDir: path.join(f.runDir, 'snapshot'),
    chunksDir: path.join(f.runDir, 'chunks'),
    manifestFile: path.join(f.runDir, 'manifest.json'),
    local: (what, argv, expect) => ({ what, via: 'this machine', command: renderArgv(argv), expect }),
    remote: (script, expect) => planCommand(script.title, o.host.renderRun(script), o.host.label, expect),
  };
}
