/** `chroma-ferry migrate`: flags -> MigrateOptions, run, summary, exit code (0 ok, 1 failed or gate, 2 bad input, 130 interrupted). */
import { abortOnSignals, confirmOrRefuse, parsePositiveInt, requireFlag } from '../lib/cli/support.ts';
import { UserError } from '../lib/common/errors.ts';
import { scopeOf } from '../lib/cli/scope-flags.ts';
import type { ScopeChoice } from '../lib/chroma/database-scope.ts';
import { parseEndpoint, type EndpointKind } from '../lib/migrate/endpoints.ts';
import { QDRANT_ORDERINGS, type QdrantOptions, type QdrantOrdering } from '../lib/migrate/qdrant-endpoint.ts';
import { detectOutputMode } from '../lib/report/output.ts';
import { formatMigrateSummary, runMigrate } from '../runbooks/migrate/index.ts';
import { formatMigratePlan, planMigrate } from '../runbooks/migrate/plan.ts';
import { formatCutoverCommand, runFinalize, runUndo } from '../runbooks/migrate/undo.ts';

export interface MigrateFlags {
  sourceUrl?: string; targetUrl?: string; batchSize?: string; dryRun?: boolean; verbose?: boolean; checkpointDir: string; logDir: string;
  filterCollection: string[]; resume?: boolean; transform: string; prefix?: string; minValid: string; workers: string; verifySample: string;
  yes?: boolean; json?: boolean; plan?: boolean; rename: string[];
  sourceTenant?: string; sourceDatabase?: string; targetTenant?: string; targetDatabase?: string; createDatabase?: boolean;
  qdrantShards?: string; qdrantReplication?: string; qdrantOrdering?: string;
  undo?: boolean; finalize?: boolean; keepPrevious?: string;
}

/** --qdrant-shards / --qdrant-replication / --qdrant-ordering: only for a Qdrant target. */
function qdrantOptionsOf(kind: EndpointKind, flags: MigrateFlags): QdrantOptions | undefined {
  const given = ([['--qdrant-shards', flags.qdrantShards], ['--qdrant-replication', flags.qdrantReplication], ['--qdrant-ordering', flags.qdrantOrdering]] as const).filter(([, v]) => v !== undefined);
  if (!given.length) return undefined;
  if (kind !== 'qdrant') throw new UserError(`${given[0]![0]}: the target is not a Qdrant server; use it with --target-url qdrant+http(s)://HOST:PORT, or drop it`);
  const ordering = flags.qdrantOrdering;
  if (ordering !== undefined && !(QDRANT_ORDERINGS as readonly string[]).includes(ordering)) {
    throw new UserError(`--qdrant-ordering ${ordering}: use ${QDRANT_ORDERINGS.join(', ')}`);
  }
  return {
    shards: flags.qdrantShards === undefined ? undefined : parsePositiveInt('--qdrant-shards', flags.qdrantShards),
    replication: flags.qdrantReplication === undefined ? undefined : parsePositiveInt('--qdrant-replication', flags.qdrantReplication),
    ordering: ordering as QdrantOrdering | undefined,
  };
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
  const keepPrevious = flags.keepPrevious === undefined ? undefined : parsePositiveInt('--keep-previous', flags.keepPrevious, 0);
  if (flags.undo || flags.finalize) {
    if (flags.undo && flags.finalize) throw new UserError('--undo and --finalize: pass one of them');
    const action = flags.undo ? '--undo' : '--finalize';
    const extra = (['sourceUrl', 'targetUrl', 'resume', 'dryRun', 'plan'] as const).find((k) => flags[k]);
    if (extra) throw new UserError(`${action} works from the cutover journal in --checkpoint-dir; drop --${extra.replace(/[A-Z]/g, (m) => `-${m.toLowerCase()}`)}`);
    if (!flags.undo) await confirmOrRefuse(`drop the previous versions kept in ${flags.checkpointDir}${keepPrevious ? ` (all but the newest ${keepPrevious} runs')` : ''}?`, flags.yes);
    const r = flags.undo ? await runUndo({ checkpointDir: flags.checkpointDir }) : await runFinalize({ checkpointDir: flags.checkpointDir, keepPrevious });
    process.stdout.write(flags.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatCutoverCommand(r)}\n`);
    return;
  }
  const sourceUrl = requireFlag('--source-url', flags.sourceUrl);
  const targetUrl = requireFlag('--target-url', flags.targetUrl);
  const source = parseEndpoint('--source-url', sourceUrl, { side: 'source' });
  const target = parseEndpoint('--target-url', targetUrl, { side: 'target', mayCreate: true });
  const sourceScope = scopeOf('source', source.kind, flags.sourceTenant, flags.sourceDatabase);
  const targetScope = scopeOf('target', target.kind, flags.targetTenant, flags.targetDatabase);
  if (flags.createDatabase && target.kind !== 'chroma' && target.kind !== 'dir') throw new UserError(`--create-database: the target is a ${target.kind === 'jsonl' ? '.jsonl file' : 'Qdrant server'}, which has no databases; drop it`);
  const qdrant = qdrantOptionsOf(target.kind, flags);
  const named = (s?: ScopeChoice) => `${s?.tenant ?? 'default_tenant'}/${s?.database ?? 'default_database'}`;
  const sameScope = named(sourceScope) === named(targetScope);
  if (source.location === target.location && sameScope) {
    throw new UserError('--source-url and --target-url are the same: migrate to another server, directory or file (or another --target-tenant / --target-database)');
  }
  const minValid = Number(flags.minValid);
  if (!Number.isFinite(minValid) || minValid < 0 || minValid > 1) throw new UserError(`--min-valid ${flags.minValid}: a share between 0 and 1, e.g. 0.95`);
  const batchSize = flags.batchSize === undefined ? undefined : parsePositiveInt('--batch-size', flags.batchSize);
  const workers = parsePositiveInt('--workers', flags.workers);
  const verifySample = parsePositiveInt('--verify-sample', flags.verifySample, 0);
  const output = detectOutputMode(Boolean(flags.json));
  if (flags.plan) {
    const plan = await planMigrate({
      sourceUrl, targetUrl, transform: flags.transform, prefix: flags.prefix, filterCollections: flags.filterCollection, batchSize, checkpointDir: flags.checkpointDir,
      sourceScope, targetScope, createDatabase: Boolean(flags.createDatabase),
    });
    process.stdout.write(flags.json ? `${JSON.stringify(plan, null, 2)}\n` : `${formatMigratePlan(plan)}\n`);
    return;
  }
  if (!flags.dryRun) await confirmOrRefuse(`migrate ${sourceUrl} -> ${targetUrl} (transform ${flags.transform})?`, flags.yes);
  const ac = abortOnSignals();
  const summary = await runMigrate({
    sourceUrl, targetUrl, batchSize, dryRun: Boolean(flags.dryRun), resume: Boolean(flags.resume), checkpointDir: flags.checkpointDir,
    logDir: flags.logDir, filterCollections: flags.filterCollection, transform: flags.transform, prefix: flags.prefix, minValid, workers,
    verifySample, output, signal: ac.signal, verbose: Boolean(flags.verbose), renames: parseRenames(flags.rename),
    sourceScope, targetScope, createDatabase: Boolean(flags.createDatabase), qdrant, keepPrevious,
  });
  process.stdout.write(output === 'json' ? `${JSON.stringify(summary, null, 2)}\n` : `${formatMigrateSummary(summary)}\n`);
  process.exitCode = summary.ok ? 0 : ac.signal.aborted ? 130 : 1;
}
