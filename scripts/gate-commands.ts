/** `chroma-ferry validate` (the gate: exit 0 PASSED, 1 FAILED, 3 WARNING, 2 usage) and `chroma-ferry restore`. */
import { abortOnSignals, confirmOrRefuse, parsePositiveInt, requireFlag } from '../lib/cli/support.ts';
import { scopeOf } from '../lib/cli/scope-flags.ts';
import { parseEndpoint } from '../lib/migrate/endpoints.ts';
import { detectOutputMode } from '../lib/report/output.ts';
import { formatRestoreReport, runRestore } from '../runbooks/restore/index.ts';
import { formatRestorePlan, planRestore } from '../runbooks/restore/plan.ts';
import { formatGateSummary, gateExitCode, prepareValidate, runValidate, type ValidateOptions } from '../runbooks/validate/index.ts';
import { formatValidatePlan, planValidate } from '../runbooks/validate/plan.ts';

/** migrate's default --checkpoint-dir: read when it holds the checkpoint of these two databases. */
const DEFAULT_CHECKPOINT_DIR = 'migration_checkpoints';

export interface ValidateFlags {
  oldDbUrl?: string; newDbUrl?: string; transform?: string; prefix?: string; checkpointDir?: string; testQueries?: string; sample?: string; queries: string; topK: string;
  output: string; autoRollback?: boolean; backup?: string; json?: boolean; yes?: boolean; plan?: boolean;
  sourceTenant?: string; sourceDatabase?: string; targetTenant?: string; targetDatabase?: string;
}

export async function validateCommand(flags: ValidateFlags): Promise<void> {
  const oldUrl = requireFlag('--old-db-url', flags.oldDbUrl);
  const newUrl = requireFlag('--new-db-url', flags.newDbUrl);
  const oldKind = parseEndpoint('--old-db-url', oldUrl, { side: 'source' }).kind;
  const newKind = parseEndpoint('--new-db-url', newUrl, { side: 'target' }).kind;
  const oldScope = scopeOf('source', oldKind, flags.sourceTenant, flags.sourceDatabase, '--old-db-url');
  const newScope = scopeOf('target', newKind, flags.targetTenant, flags.targetDatabase, '--new-db-url');
  const sample = flags.sample === undefined ? undefined : parsePositiveInt('--sample', flags.sample);
  const queries = parsePositiveInt('--queries', flags.queries);
  const topK = parsePositiveInt('--top-k', flags.topK);
  const outputMode = detectOutputMode(Boolean(flags.json));
  const ac = abortOnSignals();
  const options: ValidateOptions = {
    oldUrl, newUrl, oldScope, newScope, transform: flags.transform, prefix: flags.prefix, testQueries: flags.testQueries, sample, queries, topK,
    checkpoint: { dir: flags.checkpointDir ?? DEFAULT_CHECKPOINT_DIR, explicit: flags.checkpointDir !== undefined },
    output: flags.output, autoRollback: Boolean(flags.autoRollback), backup: flags.backup, outputMode, signal: ac.signal,
  };
  const migration = await prepareValidate(options);
  if (flags.plan) {
    const plan = await planValidate(options, migration);
    process.stdout.write(outputMode === 'json' ? `${JSON.stringify(plan, null, 2)}\n` : `${formatValidatePlan(plan)}\n`);
    return;
  }
  if (flags.autoRollback) await confirmOrRefuse(`restore ${newUrl} from ${migration.backup} if the gate fails?`, flags.yes);
  const report = await runValidate(options, migration);
  process.stdout.write(outputMode === 'json' ? `${JSON.stringify(report, null, 2)}\n` : `${formatGateSummary(report)}\n`);
  process.exitCode = ac.signal.aborted ? 130 : gateExitCode(report);
}

export interface RestoreFlags {
  backup?: string; targetUrl?: string; targetTenant?: string; targetDatabase?: string; report?: string; sample: string; yes?: boolean; json?: boolean; plan?: boolean;
}

export async function restoreCommand(flags: RestoreFlags): Promise<void> {
  const backup = requireFlag('--backup', flags.backup);
  const targetUrl = requireFlag('--target-url', flags.targetUrl);
  const targetScope = scopeOf('target', parseEndpoint('--target-url', targetUrl, { side: 'target', mayCreate: true }).kind, flags.targetTenant, flags.targetDatabase);
  const sample = parsePositiveInt('--sample', flags.sample, 0);
  const output = detectOutputMode(Boolean(flags.json));
  if (flags.plan) {
    const plan = await planRestore({ backup, targetUrl, targetScope, sample });
    process.stdout.write(output === 'json' ? `${JSON.stringify(plan, null, 2)}\n` : `${formatRestorePlan(plan)}\n`);
    return;
  }
  await confirmOrRefuse(`replace the backed-up collections on ${targetUrl} with ${backup} (and remove those the migration created)?`, flags.yes);
  const ac = abortOnSignals();
  const r = await runRestore({ backup, targetUrl, targetScope, report: flags.report, sample, output, signal: ac.signal });
  process.stdout.write(output === 'json' ? `${JSON.stringify(r, null, 2)}\n` : `${formatRestoreReport(r)}\n`);
  process.exitCode = r.ok ? 0 : ac.signal.aborted ? 130 : 1;
}
