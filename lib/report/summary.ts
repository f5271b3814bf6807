import chalk from 'chalk';
import type { DeploySummary } from '../../runbooks/deploy/index.ts';
import type { RollbackSummary } from '../../runbooks/rollback/index.ts';
import { annotateError, appendStepSummary, runSummaryMarkdown } from './github.ts';
import { formatBytes, formatMs } from '../common/units.ts';
import { formatRestartLog } from '../hosts/restart.ts';

/** Exit status of `deploy`: 0 deployed and verified, 3 deployed but not verified (`--no-verify`), 1 failed, 130 interrupted. */
export const EXIT_DEPLOYED_NOT_VERIFIED = 3;

/** The run went to the end (cleanup done) without a verified server: `--no-verify`. */
export function deployedUnverified(s: DeploySummary): boolean {
  return s.ok && !s.verified && s.steps.some((st) => st.name === 'cleanup' && st.status === 'done');
}

export function deployExitCode(s: DeploySummary, interrupted: boolean): number {
  if (!s.ok) return interrupted ? 130 : 1;
  return deployedUnverified(s) ? EXIT_DEPLOYED_NOT_VERIFIED : 0;
}

/** Where the target came from, when --target was not given: `./fly.toml` or --config's value. */
export interface TargetSource {
  targetSource?: string;
}

/** The headline of a summary, then `  target TARGET from FILE` when the target came from a file. */
export function withTargetSourceLine(summaryText: string, target: string, targetSource: string | undefined): string {
  if (!targetSource) return summaryText;
  const [head, ...rest] = summaryText.split('\n');
  return [head, `  target ${target} from ${targetSource}`, ...rest].join('\n');
}

/** The human summary of a deploy: one fact per line, so that it reads the same in CI logs. */
export function formatDeploySummary(s: DeploySummary & TargetSource): string {
  const lines: string[] = [];
  const head = s.ok ? (deployedUnverified(s) ? chalk.yellow('DEPLOYED, NOT VERIFIED') : chalk.green('DEPLOYED'))
    : s.rolledBack ? chalk.red('FAILED, ROLLED BACK') : chalk.red('FAILED');
  lines.push(`${head}  ${s.source.dir} -> ${s.target} ${s.liveDir}`);
  if (s.targetSource) lines.push(`  target ${s.target} from ${s.targetSource}`);
  if (s.error) lines.push(`  error: ${s.error}`);
  lines.push(...formatRestartLog(s.restartLog));
  lines.push('  steps:');
  for (const st of s.steps) {
    if (st.status === 'not run') continue;
    lines.push(`    ${st.name.padEnd(11)} ${st.status.padEnd(7)} ${formatMs(st.ms).padStart(9)}${st.note ? `  ${st.note}` : ''}`);
  }
  lines.push(`  source: ${s.source.collections} collections, ${s.source.records} records, ${formatBytes(s.source.bytes)}`);
  if (s.archive) {
    lines.push(`  archive: ${formatBytes(s.archive.bytes)} in ${s.archive.chunks} chunks, compression ratio ${s.archive.compressionRatio.toFixed(3)}, sha256 ${s.archive.sha256.slice(0, 16)}…`);
  }
  lines.push(`  sent: ${formatBytes(s.upload.bytesSent)} (${s.upload.chunksSent} chunks sent, ${s.upload.chunksSkipped} already on the remote)`);
  if (s.backup) lines.push(`  backup: ${s.backup.name} (${formatBytes(s.backup.bytes)})${s.backup.pruned.length ? `, pruned ${s.backup.pruned.join(', ')}` : ''}`);
  if (s.snapshotId) lines.push(`  snapshot: ${s.snapshotId} (volume snapshot, a second restore point: fly volumes create NAME --snapshot-id ${s.snapshotId})`);
  if (s.restartMs !== undefined) lines.push(`  restart: ${formatMs(s.restartMs)}`);
  if (s.downtimeMs !== undefined) lines.push(`  downtime window (swap start -> healthy): ${formatMs(s.downtimeMs)}`);
  lines.push(`  verified: ${s.verified ? 'yes' : 'no'}`);
  for (const w of s.warnings) lines.push(chalk.yellow(`  warning: ${w}`));
  if (s.rollback.length) {
    lines.push('  rollback:');
    for (const u of s.rollback) lines.push(`    ${u.name.padEnd(11)} ${u.ok ? 'undone' : `UNDO FAILED: ${u.error}`}`);
  }
  if (s.failedDir) lines.push(`  the rejected data is kept in ${s.failedDir}`);
  return lines.join('\n');
}

/** On CI: the deploy summary as Markdown in $GITHUB_STEP_SUMMARY, and an error annotation on failure. */
export function reportDeployToGithub(s: DeploySummary & TargetSource): void {
  const facts: [string, string][] = [
    ['target', `${s.target} ${s.liveDir}${s.targetSource ? ` (from ${s.targetSource})` : ''}`],
    ['source', `${s.source.collections} collections, ${s.source.records} records, ${formatBytes(s.source.bytes)}`],
    ['sent', `${formatBytes(s.upload.bytesSent)} (${s.upload.chunksSent} chunks, ${s.upload.chunksSkipped} already there)`],
    ['verified', s.verified ? 'yes' : 'no'],
  ];
  if (s.archive) facts.push(['compression ratio', s.archive.compressionRatio.toFixed(3)]);
  if (s.downtimeMs !== undefined) facts.push(['downtime window', formatMs(s.downtimeMs)]);
  if (s.backup) facts.push(['backup', s.backup.name]);
  if (s.rolledBack) facts.push(['rolled back', s.failedDir ? `yes; rejected data kept in ${s.failedDir}` : 'yes']);
  appendStepSummary(runSummaryMarkdown({
    title: s.ok ? (deployedUnverified(s) ? 'Chroma deployed, not verified' : 'Chroma deployed') : s.rolledBack ? 'Chroma deploy failed and was rolled back' : 'Chroma deploy failed',
    ok: s.ok, facts, steps: s.steps, warnings: s.warnings, error: s.error,
  }));
  if (!s.ok) annotateError(`deploy failed${s.rolledBack ? ' (rolled back)' : ''}: ${s.error ?? 'unknown error'}`, 'chroma-ferry deploy');
}

export function reportRollbackToGithub(s: RollbackSummary & TargetSource): void {
  const facts: [string, string][] = [['target', `${s.target} ${s.liveDir}${s.targetSource ? ` (from ${s.targetSource})` : ''}`], ['restored from', s.restoredFrom ?? '-']];
  if (s.keptAs) facts.push(['replaced data kept in', s.keptAs]);
  appendStepSummary(runSummaryMarkdown({
    title: s.ok ? 'Chroma rolled back' : 'Chroma rollback failed', ok: s.ok, facts, steps: s.steps, warnings: s.warnings, error: s.error,
  }));
  if (!s.ok) annotateError(`rollback failed: ${s.error ?? 'unknown error'}`, 'chroma-ferry rollback');
}
