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
import { describeLockHolder, tryVolumeLock } from '../lib/volume-lock.ts';
import { commandHints, type CommandHints } from '../lib/command-hint.ts';
import { runRefusing } from '../lib/remote/refusals.ts';
import { oldBeforeId, writeDataIdScript } from '../lib/volume/data-id.ts';
import { reconcileBeforeCommand, recordVerifiedData, retireSwapJournalScript } from '../lib/volume/deploy-swap.ts';
import type { VolumeFacts } from '../lib/volume/volume-facts.ts';
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
  /** The commands refusals suggest, from the user's command line (lib/command-hint.ts). */
  hints?: CommandHints;
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
  /**
   * `old`: NAME.old back as live; `backup`: a staged backup; `live`: NAME already holds the data
   * live before the last deploy, whose swap was undone (its restart or check failed): restart and
   * check it, never go one version further back.
   */
  mode?: 'old' | 'backup' | 'live';
  /** What the volume held once reconciled. */
  facts?: VolumeFacts;
  /** The data id NAME holds once the rollback is through (recorded as verified). */
  liveId?: string;
  hints: CommandHints;
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
      const lock = await tryVolumeLock(o.host, layout, c.runId, 'rollback', o.signal);
      if (!lock.acquired) {
        throw new UserError(`another run holds the deploy lock on ${layout.volume}${describeLockHolder(lock.holder)}; if none is running, clear it with: ${c.hints.unlock()}`);
      }
      c.stack.push('lock', async () => { await o.host.run(unlockScript(layout, c.runId)); });
      // The volume first: an interrupted swap finished or reversed; then what is there decides.
      const rec = await reconcileBeforeCommand(o.host, layout, { command: 'rollback', runId: c.runId, hints: c.hints, signal: o.signal });
      c.summary.warnings.push(...rec.warnings);
      const facts = (c.facts = rec.result.facts);
      const there = parseKv((await o.host.run(rollbackProbeScript(layout), { signal: o.signal })).stdout);
      const undone = o.backup === undefined ? await undoneDeploy(c, facts) : undefined;
      if (undone) {
        c.mode = 'live';
        c.source = layout.live;
        c.liveId = facts.live.id;
        c.summary.restoredFrom = layout.live;
        return `${layout.live} already holds the data live before deploy run ${undone} (its swap was undone): restart and check it`;
      }
      if (o.backup === undefined) {
        if (there.get('old') !== 'yes') {
          throw new UserError(`nothing to roll back to: ${layout.old} does not exist; list backups with chroma-ferry backups and pass --backup NAME`);
        }
        c.mode = 'old';
        c.source = layout.old;
        c.liveId = facts.old.id ?? oldBeforeId(c.runId);
      } else {
        c.mode = 'backup';
        const chosen = await findBackup(o.host, layout, o.backup, o.signal);
        c.summary.restoredFrom = path.posix.join(layout.backups, chosen.name);
        c.source = path.posix.join(c.staging, layout.name);
        o.backup = chosen.name;
        // A backup holds the id its data had then, maybe still carried by another dir: a new one.
        c.liveId = `restored:${c.runId}`;
      }
      if (!c.summary.restoredFrom) c.summary.restoredFrom = c.source;
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
      await runRefusing(o.host, writeDataIdScript(c.source!, c.liveId!), { volume: layout.volume }, { signal: o.signal });
      return `${kv.get('files')} files verified and extracted`;
    },
  },
  {
    name: 'swap',
    title: 'swap: live -> NAME.failed-<stamp>, previous data -> live',
    async run(c) {
      const { o, layout } = c;
      if (c.mode === 'live') return `skipped: ${layout.live} already holds the data to serve`;
      const failed = failedDirPath(layout, utcStamp());
      // A completed swap's journal no longer describes the volume once NAME is replaced (retired
      // first: a crash in between leaves unverified data live, which reconciles to this rollback).
      await o.host.run(retireSwapJournalScript(layout), { signal: o.signal });
      // NAME.old from before ids: it gets one, so that the data can be recorded as verified.
      if (c.mode === 'old' && !c.facts?.old.id) await runRefusing(o.host, writeDataIdScript(layout.old, c.liveId!), { volume: layout.volume }, { signal: o.signal });
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
      // The restored data's id as the last verified one (also without a check: the user chose to serve it).
      const record = async () => { if (c.liveId) await recordVerifiedData(o.host, c.layout, c.liveId, { signal: o.signal }); };
      if (!o.healthUrl) {
        c.summary.warnings.push('no --health-url: the restored data was not checked on a running server');
        await record();
        return 'skipped: no --health-url';
      }
      await waitForHeartbeat(o.healthUrl, { timeoutMs: o.healthTimeoutMs, signal: o.signal });
      c.summary.served = await listCollectionCounts(o.healthUrl);
      await record();
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
      // The kept manifest describes the data a deploy put live: gone unless that data is still live.
      if (c.mode !== 'live') await o.host.run(dropDeployedManifestScript(layout), { signal: o.signal });
      await o.host.run(unlockScript(layout, c.runId));
      c.stack.clear();
    },
  },
];

/**
 * The recorded deploy's run id when it did not finish and its swap was reversed on the volume (by
 * its undo, or by reconciliation) so that NAME holds what was live before it: a rollback then
 * restarts and checks that data instead of going one version further back.
 */
async function undoneDeploy(c: Ctx, f: VolumeFacts): Promise<string | undefined> {
  const deploy = await new RunbookStateStore(c.o.host, c.layout, 'deploy').load(c.o.signal).catch(() => null);
  const j = f.journal === 'corrupt' ? undefined : f.journal;
  if (!deploy || deploy.finished || !j || j.runId !== deploy.runId || j.phase !== 'reversed') return undefined;
  return j.ids.live !== undefined && f.live.kind === 'dir' && f.live.id === j.ids.live ? deploy.runId : undefined;
}

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
  const ctx: Ctx = { o: { ...o }, runId, layout, stack, summary, staging: stagingDir(layout, runId), restartAttempted: false, hints: o.hints ?? commandHints(undefined) };
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
