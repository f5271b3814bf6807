/**
 * Runbook: emergency rollback. Puts VOLUME/NAME.old back as live (default) or a verified remote
 * backup archive (`--backup latest|NAME`); the data it replaces is kept as NAME.failed-<stamp>,
 * never deleted. Works with the live dir missing or the server down. Six steps, one object each
 * in steps/; `--plan` (plan.ts) is their `plan()`.
 *
 *   preflight   target, tools, lock, what is there to roll back to   undo: release the lock
 *   stage       (backup mode) sha256 + gzip check, extract            undo: remove the staging dir
 *   swap        live -> NAME.failed-<stamp>, source -> live (journaled) undo: by the journal
 *   restart     --restart-cmd                                         undo: in swap's undo
 *   verify      heartbeat and the collections listed                  undo: none
 *   cleanup     staging dir, lock                                     undo: none
 */
import crypto from 'node:crypto';
import { commandHints } from '../../lib/cli/command-hint.ts';
import { CompensationStack } from '../../lib/engine/compensation.ts';
import { UserError } from '../../lib/common/errors.ts';
import { formatRestartLog } from '../../lib/hosts/restart.ts';
import { remoteLayout } from '../../lib/remote/layout.ts';
import { describeError, initialReports, runSteps } from '../../lib/engine/runner.ts';
import { RunbookStateStore } from '../../lib/engine/state.ts';
import { lockOwnerRecord } from '../../lib/volume/lock.ts';
import { stagingDir, type RollbackCtx, type RollbackOptions, type RollbackStepObject, type RollbackSummary } from './context.ts';
import { cleanup } from './steps/cleanup.ts';
import { preflight } from './steps/preflight.ts';
import { restart } from './steps/restart.ts';
import { stage } from './steps/stage.ts';
import { swap } from './steps/swap.ts';
import { verify } from './steps/verify.ts';

export { stagingDir, type RollbackOptions, type RollbackSummary } from './context.ts';
export { listBackups, type BackupEntry } from '../../lib/backups/catalog.ts';

/** The rollback, in order. */
export const ROLLBACK_STEPS: readonly RollbackStepObject[] = [preflight, stage, swap, restart, verify, cleanup];

/** A rollback run's context before its first step (also for tests that run single steps). */
export function newRollbackCtx(o: RollbackOptions, r: { runId: string; deployState?: RunbookStateStore; now?: () => Date }): RollbackCtx {
  const layout = remoteLayout(o.host.resolveVolume(o.volume), o.dbDir);
  const now = r.now ?? (() => new Date());
  const summary: RollbackSummary = {
    ok: false, runId: r.runId, target: o.host.label, liveDir: layout.live, steps: initialReports([...ROLLBACK_STEPS]), warnings: [], rollback: [],
  };
  return {
    o, runId: r.runId, layout, stack: new CompensationStack(), summary, staging: stagingDir(layout, r.runId),
    lockOwner: lockOwnerRecord(r.runId, 'rollback', { startedAt: now() }), now, restartAttempted: false,
    deployState: r.deployState ?? new RunbookStateStore(o.host, layout, 'deploy'),
    hints: o.hints ?? commandHints(undefined),
  };
}

export async function runRollback(o: RollbackOptions): Promise<RollbackSummary> {
  const ctx = newRollbackCtx(o, { runId: crypto.randomBytes(6).toString('hex') });
  const { summary } = ctx;
  const r = await runSteps([...ROLLBACK_STEPS], ctx, { output: o.output, signal: o.signal, stack: ctx.stack, reports: summary.steps, prompter: o.prompter });
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
