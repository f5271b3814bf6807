/**
 * `rollback --plan`: the rollback runbook as the commands a person would run by hand, from the
 * same script builders (lib/rollback-scripts.ts, lib/remote-scripts.ts). Nothing is executed;
 * with `--backup` the plan needs the backup's name (`latest` would need a look at the remote).
 */
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../lib/errors.ts';
import { cliArgv, planCommand, restartPlanStep, type PlanCommand, type PlanStep, type RunbookPlan } from '../lib/plan.ts';
import { remoteLayout, utcStamp } from '../lib/remote-layout.ts';
import { lockScript, probeScript, unlockScript } from '../lib/remote-scripts.ts';
import { failedDirPath, restoreSwapScript, rollbackProbeScript, stageBackupScript } from '../lib/rollback-scripts.ts';
import { remoteScript, renderArgv, type RemoteScript } from '../lib/shell.ts';
import { DEFAULT_RESTART_TIMEOUT_MS, restartLogFile } from '../lib/hosts/restart.ts';
import { dropDeployedManifestScript } from '../lib/deployed-manifest.ts';
import { writeDataIdScript } from '../lib/volume/data-id.ts';
import { recordLiveVerifiedScript, retireSwapJournalScript } from '../lib/volume/deploy-swap.ts';
import { ROLLBACK_STEPS, ROLLBACK_UNDO, stagingDir, type RollbackOptions } from './rollback-chromadb.ts';

/** The rollback's own options, as far as a plan needs them. */
export type RollbackPlanOptions = Pick<RollbackOptions, 'host' | 'volume' | 'dbDir' | 'backup' | 'healthUrl' | 'healthTimeoutMs' | 'restartTimeoutMs'> & {
  /** Where the target came from when --target was not given (e.g. ./fly.toml). */
  targetSource?: string;
};

export function planRollback(o: RollbackPlanOptions): RunbookPlan & { targetSource?: string } {
  if (o.backup === 'latest') {
    throw new UserError('--plan needs the backup\'s name, not latest: chroma-ferry backups --target ... lists them');
  }
  const runId = crypto.randomBytes(6).toString('hex');
  const layout = remoteLayout(o.host.resolveVolume(o.volume), o.dbDir);
  const staging = stagingDir(layout, runId);
  const source = o.backup ? path.posix.join(staging, layout.name) : layout.old;
  const failed = failedDirPath(layout, utcStamp());
  const owner = JSON.stringify({ runId, command: 'rollback (by hand, from --plan)', user: os.userInfo().username, host: os.hostname(), startedAt: new Date().toISOString() });
  const remote = (script: RemoteScript, expect?: string): PlanCommand => planCommand(script.title, o.host.renderRun(script), o.host.label, expect);
  const cli = cliArgv();
  // What the rollback put live, recorded as the last verified data (stamped first if it has no id).
  const recordLive = remote(recordLiveVerifiedScript(layout, `old-before:${runId}`), 'verified=ID');

  const steps: Record<string, Pick<PlanStep, 'commands' | 'notes'>> = {
    preflight: {
      commands: [
        remote(probeScript(layout), 'missing= is empty, volume=dir'),
        remote(rollbackProbeScript(layout), o.backup ? undefined : 'old=yes (otherwise there is nothing to roll back to: use --backup NAME)'),
        remote(lockScript(layout, owner), 'lock=acquired (otherwise another run holds the lock: stop here)'),
      ],
      notes: [],
    },
    stage: {
      commands: o.backup ? [
        remote(stageBackupScript(layout, o.backup, staging), 'files= (the archive matched its recorded sha256 and gzip -t)'),
        remote(writeDataIdScript(source, `restored:${runId}`)),
      ] : [],
      notes: o.backup ? [] : [`nothing to stage: rolling back to ${layout.old}`],
    },
    swap: {
      commands: [remote(retireSwapJournalScript(layout)), remote(restoreSwapScript(layout, source, failed), 'had_live= (yes: the replaced data is kept in the .failed dir)')],
      notes: [],
    },
    restart: restartPlanStep(o.host, { timeoutMs: o.restartTimeoutMs ?? DEFAULT_RESTART_TIMEOUT_MS, logFile: restartLogFile(layout, runId) }),
    verify: {
      commands: o.healthUrl
        ? [{ what: 'the server answers and lists its collections', via: 'this machine', expect: 'healthy',
            command: renderArgv([...cli, 'verify', '--health-url', o.healthUrl, '--timeout', `${Math.round(o.healthTimeoutMs / 1000)}s`]) }, recordLive]
        : [recordLive],
      notes: o.healthUrl ? [] : ['no --health-url: check the server by hand'],
    },
    cleanup: {
      commands: [remote(remoteScript('remove the staging dir', 'rm -rf "$1"', [staging])), remote(dropDeployedManifestScript(layout)), remote(unlockScript(layout, runId))],
      notes: [],
    },
  };
  return {
    runbook: 'rollback', runId, generatedAt: new Date().toISOString(), target: o.host.label, liveDir: layout.live,
    ...(o.targetSource ? { targetSource: o.targetSource } : {}),
    header: [
      `${source} -> ${o.host.label} ${layout.live} (the current live dir kept as ${failed})`,
      ...(o.targetSource ? [`target ${o.host.label} from ${o.targetSource}`] : []),
    ],
    steps: ROLLBACK_STEPS.map((s) => ({ name: s.name, title: s.title, undo: ROLLBACK_UNDO[s.name] ?? 'none', ...steps[s.name]! })),
  };
}
