/** `chroma-ferry migrate`: flags -> MigrateOptions, run, summary, exit code (0 ok, 1 failed or gate, 2 bad input, 130 interrupted). */
import { abortOnSignals, confirmOrRefuse, parsePositiveInt, requireFlag } from '../lib/cli/support.ts';
import { UserError } from '../lib/common/errors.ts';
import { parseEndpoint } from '../lib/migrate/endpoints.ts';
import { detectOutputMode } from '../lib/report/output.ts';
import { formatMigrateSummary, runMigrate } from '../runbooks/migrate/index.ts';
import { formatMigratePlan, planMigrate } from '../runbooks/migrate/plan.ts';

export interface MigrateFlags {
  sourceUrl?: string; targetUrl?: string; batchSize?: string; dryRun?: boolean; verbose?: boolean; checkpointDir: string; logDir: string;
  filterCollection: string[]; resume?: boolean; transform: string; prefix?: string; minValid: string; workers: string; verifySample: string;
  yes?: boolean; json?: boolean; plan?: boolean; rename: string[];
}

/** `--rename a=b` (repeatable) to { a: b }. */
export function parseRenames(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const m = /^([^=]+)=([^=]+)$/.exec(item);
    if (!m) throw new UserError(`--rename ${item}: use --rename SOURCE_NAME=TARGET_NAME`);
    out[m[1]!.trim()] = m[2]!.trim();
  }
  return out;
}

export async function migrateCommand(flags: MigrateFlags): Promise<void> {
  const sourceUrl = requireFlag('--source-url', flags.sourceUrl);
  const targetUrl = requireFlag('--target-url', flags.targetUrl);
  const source = parseEndpoint('--source-url', sourceUrl, { side: 'source' });
  const target = parseEndpoint('--target-url', targetUrl, { side: 'target', mayCreate: true });
  if (source.location === target.location) throw new UserError('--source-url and --target-url are the same: migrate to another server, directory or file');
  const minValid = Number(flags.minValid);
  if (!Number.isFinite(minValid) || minValid < 0 || minValid > 1) throw new UserError(`--min-valid ${flags.minValid}: a share between 0 and 1, e.g. 0.95`);
  const batchSize = flags.batchSize === undefined ? undefined : parsePositiveInt('--batch-size', flags.batchSize);
  const workers = parsePositiveInt('--workers', flags.workers);
  const verifySample = parsePositiveInt('--verify-sample', flags.verifySample, 0);
  const output = detectOutputMode(Boolean(flags.json));
  if (flags.plan) {
    const plan = await planMigrate({ sourceUrl, targetUrl, transform: flags.transform, prefix: flags.prefix, filterCollections: flags.filterCollection, batchSize, checkpointDir: flags.checkpointDir });
    process.stdout.write(flags.json ? `${JSON.stringify(plan, null, 2)}\n` : `${formatMigratePlan(plan)}\n`);
    return;
  }
  if (!flags.dryRun) await confirmOrRefuse(`migrate ${sourceUrl} -> ${targetUrl} (transform ${flags.transform})?`, flags.yes);
  const ac = abortOnSignals();
  const summary = await runMigrate({
    sourceUrl, targetUrl, batchSize, dryRun: Boolean(flags.dryRun), resume: Boolean(flags.resume), checkpointDir: flags.checkpointDir,
    logDir: flags.logDir, filterCollections: flags.filterCollection, transform: flags.transform, prefix: flags.prefix, minValid, workers,
    verifySample, output, signal: ac.signal, verbose: Boolean(flags.verbose), renames: parseRenames(flags.rename),
  });
  process.stdout.write(output === 'json' ? `${JSON.stringify(summary, null, 2)}\n` : `${formatMigrateSummary(summary)}\n`);
  process.exitCode = summary.ok ? 0 : ac.signal.aborted ? 130 : 1;
}
