/**
 * Runbook: emergency rollback. Puts VOLUME/NAME.old back as live (default) or a verified remote
 * backup archive (`--backup latest|NAME`); the data it replaces is kept as NAME.failed-<stamp>,
 * never deleted. Works with the live dir missing or the server down.
 *
 *   preflight   target, tools, lock, what is there to roll back to   undo: release the lock
 *   stage       (backup mode) sha256 + gzip check, extract            undo: remove the staging dir
 *   swap        live -> NAME.failed-<stamp>, source -> live           undo: reverse the renames
 *   restart     --restart-cmd                                         undo: in swap's undo
 *   verify      heartbeat and the collections listed                  undo: none
 *   cleanup     staging dir, lock                                     undo: none
 */
import crypto from 'node:crypto';
import path from 'node:path';
import { listCollectionCounts, waitForHeartbeat, type ServedCollection } from '../lib/chroma/http.ts';
import { CompensationStack, type UndoOutcome } from '../lib/compensation.ts';
import { UserError } from '../lib/errors.ts';
import type { RemoteHost, RestartOptions } from '../lib/hosts/remote-host.ts';
import { DEFAULT_RESTART_TIMEOUT_MS, formatRestartLog, restartLogFile, RestartError } from '../lib/hosts/restart.ts';
import type { OutputMode } from '../lib/output.ts';
import { remoteLayout, utcStamp, type RemoteLayout } from '../lib/remote-layout.ts';
import { parseKv, unlockScript } from '../lib/remote-scripts.ts';
import { findBackup } from '../lib/backup-catalog.ts';
import { checkVolume } from '../lib/volume-check.ts';
import { describeLockHolder, tryVolumeLock, unlockHint } from '../lib/volume-lock.ts';
import { failedDirPath, restoreSwapScript, rollbackProbeScript, stageBackupScript, undoRestoreSwapScript } from '../lib/rollback-scripts.ts';
import { describeError, initialReports, runSteps, type StepDef, type StepReport } from '../lib/runbook-runner.ts';
import { remoteScript } from '../lib/shell.ts';
import { dropDeployedManifestScript } from '../lib/deployed-manifest.ts';
import { RunbookStateStore } from '../lib/runbook-state.ts';
import type { StepPrompter } from '../lib/step-prompt.ts';

export interface RollbackOptions {
  host: RemoteHost;
  volume: string;
  dbDir: string;
  /** undefined: NAME.old; 'latest' or a backup file name: that remote backup. */
  backup?: string;
  healthUrl?: string;
  healthTimeoutMs: number;
  /** `--restart-timeout`: the limit of each restart, the undo's too (default 120 s). */
  restartTimeoutMs?: number;
  output: OutputMode;
  signal: AbortSignal;
  /** `--step`: asked before each step (continue / skip / abort). */
  prompter?: StepPrompter;
}

export interface RollbackSummary {
  ok: boolean;
  runId: string;
  target: string;
  liveDir: string;
  restoredFrom?: string;
  keptAs?: string;
  steps: StepReport[];
  served?: ServedCollection[];
  /** The restart command's output on the host, and its last lines when the restart failed. */
  restartLog?: { file: string; tail: string[] };
  warnings: string[];
  error?: string;
  rollback: UndoOutcome[];
}

interface Ctx {
  o: RollbackOptions;
  runId: string;
  layout: RemoteLayout;
  stack: CompensationStack;
  summary: RollbackSummary;
  staging: string;
  source?: string;
  restartAttempted: boolean;
}

export { listBackups, type BackupEntry } from '../lib/backup-catalog.ts';

/** What undoes each step when a later one fails (also printed by --plan). */
export const ROLLBACK_UNDO: Record<string, string> = {
  preflight: 'release the lock (unlock script with this run id)',
  stage: 'remove the staging dir',
  swap: 'the restored dir back where it came from, the replaced live dir back as live; restart',
  restart: 'part of the swap undo',
  verify: 'none',
  cleanup: 'none',
};

export function stagingDir(layout: RemoteLayout, runId: string): string {
  return path.posix.join(layout.ferry, `restore-${runId}`);
}

export const ROLLBACK_STEPS: StepDef<Ctx>[] = [
  {
    name: 'preflight',
    title: 'preflight: target, lock, something to roll back to',
    async run(c) {
      const { o, layout } = c;
      await checkVolume(o.host, layout, o.signal);
      const there = parseKv((await o.host.run(rollbackProbeScript(layout), { signal: o.signal })).stdout);
      if (o.backup === undefined) {
        if (there.get('old') !== 'yes') {
          throw new UserError(`nothing to roll back to: ${layout.old} does not exist; list backups with chroma-ferry backups and pass --backup NAME`);
        }
        c.source = layout.old;
      } else {
        const chosen = await findBackup(o.host, layout, o.backup, o.signal);
        c.summary.restoredFrom = path.posix.join(layout.backups, chosen.name);
        c.source = path.posix.join(c.staging, layout.name);
        o.backup = chosen.name;
      }
      if (!c.summary.restoredFrom) c.summary.restoredFrom = c.source;
      const lock = await tryVolumeLock(o.host, layout, c.runId, 'rollback', o.signal);
      if (!lock.acquired) {
        throw new UserError(`another run holds the deploy lock on ${layout.volume}${describeLockHolder(lock.holder)}; if none is running, clear it with: ${unlockHint(o.host, o.volume)}`);
      }
      c.stack.push('lock', async () => { await o.host.run(unlockScript(layout, c.runId)); });
      return `from ${c.summary.restoredFrom}; live dir ${there.get('live') === 'yes' ? 'present' : 'missing'}`;
    },
  },
  {
    name: 'stage',
    title: 'stage: verify and extract the backup',
    async run(c) {
      const { o, layout } = c;
      if (o.backup === undefined) return 'skipped: rolling back to NAME.old';
      c.stack.push('stage', async () => { await o.host.run(remoteScript('remove the staging dir', 'rm -rf "$1"', [c.staging])); });
      const kv = parseKv((await o.host.run(stageBackupScript(layout, o.backup, c.staging), { signal: o.signal })).stdout);
      return `${kv.get('files')} files verified and extracted`;
    },
  },
  {
    name: 'swap',
    title: 'swap: live -> NAME.failed-<stamp>, previous data -> live',
    async run(c) {
      const { o, layout } = c;
      const failed = failedDirPath(layout, utcStamp());
      // Renames only, never cancelled half-way.
      const kv = parseKv((await o.host.run(restoreSwapScript(layout, c.source!, failed))).stdout);
      const hadLive = kv.get('had_live') === 'yes';
      if (hadLive) c.summary.keptAs = failed;
      c.stack.push('swap', async () => {
        await o.host.run(undoRestoreSwapScript(layout, c.source!, failed, hadLive));
        if (c.restartAttempted) await o.host.restart(restartOptions(c));
      });
      o.signal.throwIfAborted();
      return hadLive ? `current data kept as ${failed}` : 'no live dir was there';
    },
  },
  {
    name: 'restart',
    title: 'restart: the Chroma server',
    async run(c) {
      c.restartAttempted = true;
      let restarted: boolean;
      try {
        restarted = await c.o.host.restart({ ...restartOptions(c), signal: c.o.signal });
      } catch (e) {
        if (e instanceof RestartError) c.summary.restartLog = { file: e.logFile, tail: e.logTail };
        throw e;
      }
      if (!restarted) {
        c.summary.warnings.push('no --restart-cmd: the server was not restarted');
        return 'skipped: no --restart-cmd';
      }
    },
  },
  {
    name: 'verify',
    title: 'verify: the server answers and lists its collections',
    async run(c) {
      const { o } = c;
      if (!o.healthUrl) {
        c.summary.warnings.push('no --health-url: the restored data was not checked on a running server');
        return 'skipped: no --health-url';
      }
      await waitForHeartbeat(o.healthUrl, { timeoutMs: o.healthTimeoutMs, signal: o.signal });
      c.summary.served = await listCollectionCounts(o.healthUrl);
      return `${c.summary.served.length} collections served`;
    },
  },
  {
    name: 'cleanup',
    title: 'cleanup: staging dir and lock',
    async run(c) {
      const { o, layout } = c;
      await o.host.run(remoteScript('remove the staging dir', 'rm -rf "$1"', [c.staging]));
      await closeRecordedDeploy(c);
      await o.host.run(dropDeployedManifestScript(layout), { signal: o.signal });
      await o.host.run(unlockScript(layout, c.runId));
      c.stack.clear();
    },
  },
];

/** Every restart of this run: bounded by `--restart-timeout`, its output in `.ferry/restart-RUNID.log`. */
function restartOptions(c: Ctx): RestartOptions {
  return { timeoutMs: c.o.restartTimeoutMs ?? DEFAULT_RESTART_TIMEOUT_MS, logFile: restartLogFile(c.layout, c.runId) };
}

/** A deploy that stopped half-way is over once rolled back: its state says so (a new deploy may start). */
async function closeRecordedDeploy(c: Ctx): Promise<void> {
  const store = new RunbookStateStore(c.o.host, c.layout, 'deploy');
  const deploy = await store.load(c.o.signal).catch(() => null);
  if (!deploy || deploy.finished) return;
  deploy.finished = true;
  deploy.outcome = `rolled back by rollback run ${c.runId}`;
  await store.save(deploy, c.o.signal);
}

export async function runRollback(o: RollbackOptions): Promise<RollbackSummary> {
  const runId = crypto.randomBytes(6).toString('hex');
  const layout = remoteLayout(o.host.resolveVolume(o.volume), o.dbDir);
  const stack = new CompensationStack();
  const summary: RollbackSummary = {
    ok: false, runId, target: o.host.label, liveDir: layout.live, steps: initialReports(ROLLBACK_STEPS), warnings: [], rollback: [],
  };
  const ctx: Ctx = { o: { ...o }, runId, layout, stack, summary, staging: stagingDir(layout, runId), restartAttempted: false };
  const r = await runSteps(ROLLBACK_STEPS, ctx, { output: o.output, signal: o.signal, stack, reports: summary.steps, prompter: o.prompter });
  summary.ok = r.ok;
  summary.rollback = r.rollback;
  if (!r.ok) {
    // Refused in preflight: nothing changed, so it is a one-line user error (exit 2).
    if (r.error instanceof UserError && summary.steps[0]!.status === 'failed') throw r.error;
    summary.error = describeError(r.error, o.signal);
  }
  return summary;
}

export function formatRollbackSummary(s: RollbackSummary): string {
  const lines = [`${s.ok ? 'ROLLED BACK' : 'ROLLBACK FAILED'}  ${s.target} ${s.liveDir}`];
  if (s.error) lines.push(`  error: ${s.error}`);
  lines.push(...formatRestartLog(s.restartLog));
  if (s.restoredFrom) lines.push(`  restored from: ${s.restoredFrom}`);
  if (s.keptAs) lines.push(`  the replaced data is kept in ${s.keptAs}`);
  for (const st of s.steps) if (st.status !== 'not run') lines.push(`    ${st.name.padEnd(10)} ${st.status.padEnd(7)} ${Math.round(st.ms)} ms${st.note ? `  ${st.note}` : ''}`);
  if (s.served) for (const c of s.served) lines.push(`  serving ${c.name}: ${c.count}`);
  for (const w of s.warnings) lines.push(`  warning: ${w}`);
  for (const u of s.rollback) lines.push(`  undo ${u.name}: ${u.ok ? 'done' : `FAILED: ${u.error}`}`);
  return lines.join('\n');
}
