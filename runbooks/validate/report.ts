/**
 * The gate's report (report.md + report.json) and its summary: the overall status from the eight
 * checks, the decision (`rollback_triggered` whenever FAILED: a separate rollback job acts on it),
 * and what this run did about it (`rollback_executed`, `rollback_result`).
 */
import fs from 'node:fs/promises';
import { writeJsonAtomic } from '../../lib/engine/atomic-file.ts';
import { ROLLBACK_REASONS, type CheckResult, type CheckStatus } from '../../lib/gate/checks.ts';
import { formatDifferences, type DifferenceReport } from '../../lib/gate/differences.ts';
import { DIFFERENCE_KINDS } from '../../lib/gate/record-diff.ts';
import type { GateMigration } from '../../lib/gate/recorded-migration.ts';
import type { ScopeChoice } from '../../lib/chroma/database-scope.ts';
import { shQuote } from '../../lib/remote/shell.ts';
import type { StepReport } from '../../lib/engine/runner.ts';
import type { RestoreReport } from '../restore/index.ts';

/** What `restore` did when this run carried out the rollback. */
export interface RollbackResult {
  ok: boolean;
  /** restore: the backup restored; undo_cutover: a staged migration into Qdrant, its alias cutover undone (no restore). */
  method: 'restore' | 'undo_cutover';
  /** undo_cutover: each alias and the collection it points at again (null: removed). */
  aliases?: { alias: string; collection: string | null }[];
  backup: string;
  removed: string[];
  restored: RestoreReport['restored'];
  mismatches: string[];
  report_file: string | null;
  error?: string;
}

export interface GateReport {
  overall_status: CheckStatus;
  /** The gate's decision: true iff overall_status is FAILED (a rollback job reading report.json acts on it). */
  rollback_triggered: boolean;
  rollback_reason: string | null;
  /** Whether this run carried out the rollback (--auto-rollback), and how it went. */
  rollback_executed: boolean;
  rollback_result: RollbackResult | null;
  /** The backup a rollback restores (--backup, else the migration's checkpoint); null when unknown. */
  rollback_backup: string | null;
  old_db: string;
  new_db: string;
  /** --target-tenant / --target-database as given (absent: the server's default). */
  new_db_scope?: ScopeChoice;
  transform: string;
  /** flag: --transform (agreeing with the migration's record, if any); recorded: the migration's; default: none. */
  transform_source: GateMigration['transform']['source'];
  transform_recorded_in: string | null;
  prefix: string | null;
  generated_at: string;
  elapsed_seconds: number;
  data_loss_percentage: number;
  semantic_divergence_percentage: number;
  checks: CheckResult[];
  /** Records by kind of difference (missing, extra, document_changed, metadata_*, embedding_changed), each with its first ids; null when the gate did not finish. */
  differences: DifferenceReport | null;
  steps: StepReport[];
  error?: string;
  notes: string[];
  report_files: { markdown: string; json: string };
}

/** The checks' results into the report: the overall status, the two headline figures and the differences by kind. */
export function recordChecks(report: GateReport, checks: CheckResult[], differences: DifferenceReport): void {
  report.checks = checks;
  report.differences = differences;
  const statuses = checks.map((x) => x.status);
  report.overall_status = statuses.includes('FAILED') ? 'FAILED' : statuses.includes('WARNING') ? 'WARNING' : 'PASSED';
  report.data_loss_percentage = Number(checks[0]!.figures.data_loss_percentage);
  report.semantic_divergence_percentage = Number(checks[3]!.figures.semantic_divergence_percentage);
}

/** A FAILED gate triggers the rollback: why, from the failed checks or the error that stopped it. */
export function rollbackReason(report: GateReport): string {
  const failed = report.checks.filter((x) => x.status === 'FAILED').map((x) => x.name);
  return report.error ? `validation did not complete: ${report.error}` : failed.map((n) => `${n} failed: ${ROLLBACK_REASONS[n]}`).join('; ');
}

/** report.json, then report.md, each written whole (temp + rename). */
export async function writeGateReports(report: GateReport): Promise<void> {
  const { markdown, json } = report.report_files;
  await writeJsonAtomic(json, report);
  const tmp = `${markdown}.${process.pid}.tmp`;
  await fs.writeFile(tmp, formatGateMarkdown(report));
  await fs.rename(tmp, markdown);
}

/** The command that carries out the rollback when this run did not. */
export function restoreCommand(r: GateReport): string {
  return restoreCommandFor(r.rollback_backup, r.new_db, r.new_db_scope);
}

/** The restore of `backup` (unknown: a placeholder) onto the new database, as a command line. */
export function restoreCommandFor(backup: string | null, newUrl: string, scope?: ScopeChoice): string {
  const scoped = (scope?.tenant !== undefined ? ` --target-tenant ${shQuote(scope.tenant)}` : '') + (scope?.database !== undefined ? ` --target-database ${shQuote(scope.database)}` : '');
  return `chroma-ferry restore --backup ${backup ? shQuote(backup) : 'CHECKPOINT_DIR/RUN/backup.jsonl'} --target-url ${shQuote(newUrl)}${scoped} --yes`;
}

function triggeredLine(r: GateReport): string {
  return `rollback triggered: ${r.rollback_triggered ? 'YES' : 'NO'}${r.rollback_reason ? ` (${r.rollback_reason})` : ''}`;
}

function aliasesLine(x: RollbackResult): string {
  return (x.aliases ?? []).map((a) => (a.collection ? `alias ${a.alias} -> ${a.collection}` : `alias ${a.alias} removed`)).join(', ');
}

function executedLine(r: GateReport, code: (s: string) => string): string {
  const x = r.rollback_result;
  if (x?.method === 'undo_cutover') return `rollback executed: YES, cutover undone: ${aliasesLine(x)}${x.removed.length ? `; dropped ${x.removed.join(', ')}` : ''}`;
  if (x) return `rollback executed: YES, ${x.ok ? `restored from ${code(x.backup)}` : `FAILED: ${x.error ?? 'restore failed'}`}${x.report_file ? ` (restore report ${code(x.report_file)})` : ''}`;
  if (!r.rollback_triggered) return 'rollback executed: NO';
  return `rollback executed: NO (run ${code(restoreCommand(r))})`;
}

type TransformFields = Pick<GateReport, 'transform' | 'prefix' | 'transform_source' | 'transform_recorded_in'>;

function transformLine(r: TransformFields, code: (s: string) => string): string {
  const why = r.transform_source === 'recorded' ? ` (recorded by the migration in ${code(r.transform_recorded_in!)})`
    : r.transform_source === 'default' ? ' (no --transform and no migration record)'
      : r.transform_recorded_in ? ` (as recorded by the migration in ${code(r.transform_recorded_in)})` : '';
  return `transform: ${code(r.transform)}${r.prefix ? ` --prefix ${r.prefix}` : ''}${why}`;
}

/** The transform as the report names it, for a gate that has not run yet (`--plan`). */
export function describeTransform(m: GateMigration): string {
  const t = m.transform;
  return transformLine({ transform: t.spec, prefix: t.prefix ?? null, transform_source: t.source, transform_recorded_in: t.recordedIn }, (s) => s).replace(/^transform: /, '');
}

/** Exit codes documented in README: 0 PASSED, 1 FAILED, 3 WARNING (2: usage). */
export function gateExitCode(r: GateReport): number {
  return r.overall_status === 'PASSED' ? 0 : r.overall_status === 'WARNING' ? 3 : 1;
}

export function formatGateMarkdown(r: GateReport): string {
  const icon = (s: CheckStatus) => (s === 'PASSED' ? '✅' : s === 'WARNING' ? '⚠️' : '❌');
  const lines = [
    `# Validation report: ${r.overall_status}`, '',
    `- old database: \`${r.old_db}\``, `- new database: \`${r.new_db}\``, `- ${transformLine(r, tick)}`,
    `- generated: ${r.generated_at}, elapsed ${r.elapsed_seconds} s`,
    `- data loss: ${r.data_loss_percentage}%, semantic divergence: ${r.semantic_divergence_percentage}%`,
    `- ${triggeredLine(r)}`,
    `- ${executedLine(r, tick)}`,
  ];
  if (r.error) lines.push(`- error: ${r.error}`);
  for (const n of r.notes) lines.push(`- note: ${n}`);
  lines.push('', '| # | check | status | figures |', '| --- | --- | --- | --- |');
  for (const c of r.checks) {
    lines.push(`| ${c.id} | ${c.name} | ${icon(c.status)} ${c.status} | ${Object.entries(c.figures).map(([k, v]) => `${k}: ${v}`).join(', ')} |`);
  }
  if (r.differences) {
    lines.push('', '## Differences', '', '| kind | records | first ids |', '| --- | --- | --- |');
    for (const k of DIFFERENCE_KINDS) {
      const d = r.differences[k];
      lines.push(`| ${k} | ${d.records} | ${d.first_ids.map((id) => tick(id.replace(/\|/g, '\\|'))).join(', ')}${d.records > d.first_ids.length ? ', ...' : ''} |`);
    }
  }
  for (const c of r.checks) {
    if (!c.details.length || c.status === 'PASSED') continue;
    lines.push('', `## ${c.id}. ${c.name}`, '', ...c.details.map((d) => `- ${d.replace(/\|/g, '\\|')}`));
  }
  const x = r.rollback_result;
  if (x) {
    if (x.method === 'undo_cutover') lines.push('', '## Rollback', '', `- cutover undone: ${aliasesLine(x)}`);
    else lines.push('', '## Rollback', '', `- ${x.ok ? 'restored' : 'FAILED'} from \`${x.backup}\`${x.report_file ? `; restore report \`${x.report_file}\`` : ''}`);
    if (x.error) lines.push(`- error: ${x.error}`);
    for (const n of x.removed) lines.push(`- removed ${n} (created by the migration${x.method === 'undo_cutover' ? ': the run-stamped collection that failed the gate' : ''})`);
    for (const c of x.restored) lines.push(`- restored ${c.name}: ${c.records} records${c.actual !== undefined ? `, ${c.actual} on the target` : ''}`);
    for (const p of x.mismatches.slice(0, 20)) lines.push(`- problem: ${p}`);
  }
  return `${lines.join('\n')}\n`;
}

export function formatGateSummary(r: GateReport): string {
  const lines = [`VALIDATION ${r.overall_status}  ${r.old_db} -> ${r.new_db} (${r.elapsed_seconds} s)`];
  lines.push(`  ${transformLine(r, (s) => s)}`);
  if (r.error) lines.push(`  error: ${r.error}`);
  for (const n of r.notes) lines.push(`  note: ${n}`);
  for (const c of r.checks) lines.push(`  ${String(c.id)}. ${c.name.padEnd(28)} ${c.status.padEnd(7)} ${Object.entries(c.figures).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  if (r.differences) lines.push(`  differences: ${formatDifferences(r.differences)}`);
  lines.push(`  ${triggeredLine(r)}`, `  ${executedLine(r, (s) => s)}`);
  lines.push(`  report: ${r.report_files.markdown} and ${r.report_files.json}`);
  return lines.join('\n');
}

function tick(s: string): string {
  return `\`${s}\``;
}
