#!/usr/bin/env -S node --import tsx
/**
 * chroma-ferry: the one CLI. Each subcommand parses its flags, builds the host, runs one
 * runbook and sets the exit code (0 ok, 1 failed, 2 bad input or refused, 130 interrupted).
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { UserError } from '../lib/common/errors.ts';
import { createHost } from '../lib/hosts/index.ts';
import { prepareFlyDeploy } from '../lib/hosts/fly.ts';
import { chooseTarget, describeTarget, explainTargetSource } from '../lib/hosts/fly-config.ts';
import { detectOutputMode } from '../lib/report/output.ts';
import { annotateError } from '../lib/report/github.ts';
import { terminalPrompter } from '../lib/engine/step-prompt.ts';
import { deployedManifestFile } from '../lib/remote/layout.ts';
import { formatUnlocked, unlockVolume } from '../lib/volume/unlock.ts';
import { requireVolume } from '../lib/volume/check.ts';
import { deployExitCode, formatDeploySummary, reportDeployToGithub, reportRollbackToGithub, withTargetSourceLine } from '../lib/report/summary.ts';
import { parseDbDir, parseTarget, parseVolume } from '../lib/locations/target.ts';
import { parseSize } from '../lib/common/units.ts';
import {
  abortOnSignals, collect, confirmOrRefuse, parseDuration, parseHealthUrl, parsePositiveInt, parseRestartTimeout, parseSourceDir,
  parseSshKey, reportFatal, requireFlag, type TargetFlags,
} from '../lib/cli/support.ts';
import { DEPLOY_STEPS, runDeploy, type DeployStep } from '../runbooks/deploy/index.ts';
import { selectSteps } from '../lib/engine/runner.ts';
import type { TargetSpec } from '../lib/locations/target.ts';
import { planDeploy } from '../runbooks/deploy/plan.ts';
import { parseWorkRoot } from '../lib/engine/run-dir.ts';
import { planRollback } from '../runbooks/rollback/plan.ts';
import { formatPlan } from '../lib/engine/plan.ts';
import { snapshotCommand, packCommand, verifyCommand, type KeptManifest, type VerifyFlags } from './local-commands.ts';
import { verifyAppCommand } from './verify-app-command.ts';
import { readDeployedManifest } from '../lib/volume/deployed-manifest.ts';
import { migrateAction, restoreAction, validateAction } from './on-use-commands.ts';
import { registerBackupCommands } from './backup-commands.ts';
import { DEFAULT_DB_DIR, hintsFor, targetOptions, volumeHostOptions, volumeOptions, withVolumeHost } from './volume-options.ts';

interface DeployFlags {
  source?: string; chunkSize: string; keepBackups: string; uploadConcurrency: string; workDir?: string; upload: UploadMethod;
  snapshot?: boolean; step?: boolean; plan?: boolean; from?: DeployStep; only?: DeployStep;
  allowServerDown?: boolean; verify: boolean; appHealthUrl?: string;
}
import { formatRollbackSummary, runRollback } from '../runbooks/rollback/index.ts';
import { UPLOAD_METHODS, type UploadMethod } from '../lib/transfer/chunk-uploader.ts';
import { createUploader } from '../lib/transfer/index.ts';
import { parseS3Flags, type S3Flags } from '../lib/transfer/s3-flags.ts';
import { APP_HEALTH_FLAG, parseAppHealthUrl } from '../lib/serving/app-health.ts';

/**
 * Exit 0 means verified: a deploy that runs the verify step needs a server to check (`--health-url`;
 * fly: targets reach theirs through `fly proxy`) or an app (`--app-health-url`), or `--no-verify`
 * to deploy unverified (exit 3). Returns whether the run is unverified by choice.
 */
function checkVerifyPolicy(target: TargetSpec, healthUrl: string | undefined, appHealthUrl: string | undefined, flags: DeployFlags): boolean {
  const noVerify = flags.verify === false;
  if (healthUrl && appHealthUrl) {
    throw new UserError(`--health-url and ${APP_HEALTH_FLAG} do not go together: give --health-url for a Chroma server, ${APP_HEALTH_FLAG} for an app that embeds Chroma`);
  }
  if (noVerify && healthUrl) throw new UserError('--no-verify and --health-url do not go together: drop --no-verify to verify the deploy on that server');
  if (noVerify && appHealthUrl) throw new UserError(`--no-verify and ${APP_HEALTH_FLAG} do not go together: drop --no-verify to verify the deploy on that app`);
  if (noVerify && flags.allowServerDown) throw new UserError('--allow-server-down applies to a verified deploy (--health-url): drop it with --no-verify');
  if (appHealthUrl && flags.allowServerDown) throw new UserError(`--allow-server-down applies to --health-url (the Chroma server checked before the deploy): drop it with ${APP_HEALTH_FLAG}`);
  const verifies = selectSteps(DEPLOY_STEPS, { from: flags.from, only: flags.only }).has('verify');
  if (!noVerify && !healthUrl && !appHealthUrl && target.kind !== 'fly' && verifies) {
    throw new UserError(`no --health-url: a deploy must be verified; give --health-url URL (a Chroma server) or ${APP_HEALTH_FLAG} URL (an app that embeds Chroma), or --no-verify to deploy unverified`);
  }
  return noVerify;
}

type VolumeFlags = Pick<TargetFlags, 'target' | 'volume' | 'machine' | 'config' | 'dbDir' | 'sshKey' | 'sshOption'>;

/** package.json's version: one directory up from scripts/, two from the build's dist/scripts/. */
function packageVersion(): string {
  for (const up of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'chroma-ferry' && pkg.version) return pkg.version;
    } catch {
      // not this level
    }
  }
  throw new Error('package.json of chroma-ferry not found beside the CLI');
}

const program = new Command('chroma-ferry')
  .description('Move ChromaDB data safely: deploy, roll back, migrate, validate.')
  .version(packageVersion(), '-V, --version', 'print the version')
  .exitOverride()
  // Options after a subcommand belong to it (`backups pull NAME --target ...`).
  .enablePositionalOptions()
  .configureOutput({ outputError: (str, write) => write(str.replace(/^error: /, 'chroma-ferry: ')) });

targetOptions(
  program
    .command('deploy')
    .description('replace the remote Chroma dir with a local one (backup, upload, swap, restart, verify, auto-rollback)')
    .option('--source <dir>', 'local Chroma persist dir (holds chroma.sqlite3)'),
)
  .option('--chunk-size <size>', 'upload chunk size (>= 1MiB; the first chunks are 1, 2, 4 ... MiB up to it)', '10MiB')
  .option('--keep-backups <n>', 'remote backups to keep', '3')
  .addOption(new Option('--upload <method>', 'how chunks travel').choices([...UPLOAD_METHODS]).default('sftp'))
  .addOption(new Option('--upload-concurrency <n>', 'at most this many chunks uploaded in parallel (fewer when the measured upload needs fewer)').default('3'))
  .option('--work-dir <dir>', 'where the local work dir goes: the deploy works in DIR/chroma-ferry-<run id> and removes only that (DIR is created if missing; default: the system temp dir)')
  .option('--s3-bucket <bucket>', '--upload s3: bucket the chunks pass through')
  .option('--s3-endpoint <url>', '--upload s3: R2 or other S3-compatible endpoint (path-style)')
  .option('--s3-prefix <prefix>', '--upload s3: key prefix', 'chroma-ferry/')
  .option('--s3-region <region>', '--upload s3: region (default: AWS_REGION, AWS_DEFAULT_REGION or auto)')
  .option('--snapshot', 'fly: also take a Fly volume snapshot before the backup (a second restore point)')
  .option('--app-health-url <url>', 'an app that embeds Chroma, instead of --health-url: its URL must answer 2xx, a process must hold the new chroma.sqlite3 open, the counts read on the remote must match (fly: default from fly.toml [[http_service.checks]] path)')
  .option('--allow-server-down', 'deploy although the server at --health-url does not answer before the deploy')
  .option('--no-verify', 'deploy without --health-url: nothing checks the deployed data (exit 3, DEPLOYED, NOT VERIFIED)')
  .option('--step', 'ask before each step: continue, skip or abort')
  .option('--plan', 'print every step and the exact commands it would run, as a sh script (with --json: as data); nothing is executed')
  .addOption(new Option('--from <step>', 'resume the recorded run at this step (after a crash or a stop)').choices([...DEPLOY_STEPS]))
  .addOption(new Option('--only <step>', 'run this one step of the recorded run (with the preflight)').choices([...DEPLOY_STEPS]))
  .action(explainTargetSource(async (flags: TargetFlags & DeployFlags & S3Flags, cmd: Command) => {
    const source = parseSourceDir(requireFlag('--source', flags.source));
    parseWorkRoot(flags.workDir, source); // refused here, before the confirmation; the runbook checks it again
    const chosen = chooseTarget(flags, cmd);
    const target = parseTarget(requireFlag('--target', chosen.target));
    const volume = parseVolume(chosen.volume);
    const dbDir = parseDbDir(flags.dbDir);
    const chunkSize = parseSize('--chunk-size', flags.chunkSize);
    if (chunkSize < 1024 * 1024) throw new UserError(`--chunk-size ${flags.chunkSize}: must be at least 1MiB`);
    const keepBackups = parsePositiveInt('--keep-backups', flags.keepBackups);
    const uploadConcurrency = parsePositiveInt('--upload-concurrency', flags.uploadConcurrency);
    const healthUrl = parseHealthUrl(flags.healthUrl);
    const appHealthUrl = parseAppHealthUrl(flags.appHealthUrl);
    const healthTimeoutMs = parseDuration('--health-timeout', flags.healthTimeout);
    const restartTimeoutMs = parseRestartTimeout(flags.restartTimeout);
    const sshKey = parseSshKey(flags.sshKey);
    const output = detectOutputMode(Boolean(flags.json));
    const s3 = parseS3Flags(flags.upload, flags);
    if (flags.from && flags.only) throw new UserError('--from and --only do not go together: pick one');
    const noVerify = checkVerifyPolicy(target, healthUrl, appHealthUrl, flags);
    // fly: a fly.toml whose service is checked at an app's path (not a Chroma endpoint) is an app that embeds Chroma.
    const appPath = target.kind === 'fly' && !healthUrl && !appHealthUrl && !noVerify ? chosen.appHealthPath : undefined;
    if (flags.plan) {
      if (flags.from || flags.only || flags.step) throw new UserError('--plan prints the whole runbook: leave out --from, --only and --step');
      const host = createHost(target, { sshKey, sshOptions: flags.sshOption, restartCmd: flags.restartCmd, machine: chosen.machine, flyInternalPort: chosen.internalPort });
      try {
        const plan = await planDeploy({
          source, host, uploader: await createUploader(flags.upload, host, { s3 }), volume, dbDir, chunkSize, healthUrl, appHealthUrl, healthTimeoutMs,
          keepBackups, restartTimeoutMs, workDir: flags.workDir, snapshot: flags.snapshot, targetSource: chosen.targetSource,
        });
        process.stdout.write(flags.json ? `${JSON.stringify(plan, null, 2)}\n` : formatPlan(plan));
      } finally {
        await host.close();
      }
      return;
    }
    const part = flags.from ? ` from step ${flags.from}` : flags.only ? ` (only step ${flags.only})` : '';
    await confirmOrRefuse(`replace ${volume}/${dbDir} on ${describeTarget(chosen)} with ${source}${part}?`, flags.yes);
    const prompter = flags.step ? terminalPrompter() : undefined;

    const host = createHost(target, { sshKey, sshOptions: flags.sshOption, restartCmd: flags.restartCmd, machine: chosen.machine, flyInternalPort: chosen.internalPort });
    const uploader = await createUploader(flags.upload, host, { s3 });
    const ac = abortOnSignals();
    try {
      // An app is checked at its own URL: no proxy to a Chroma server unless fly.toml names the app's health path.
      const fly = await prepareFlyDeploy(host, { healthUrl, snapshot: flags.snapshot, signal: ac.signal, noVerify: noVerify || appHealthUrl !== undefined });
      const served = appPath && fly.healthUrl ? { appHealthUrl: `${fly.healthUrl}${appPath}` } : { healthUrl: fly.healthUrl, appHealthUrl };
      const summary = await runDeploy({
        source, host, uploader, volume, dbDir, chunkSize, ...served, healthTimeoutMs, restartTimeoutMs,
        allowServerDown: flags.allowServerDown, noVerify, keepBackups, uploadConcurrency,
        workDir: flags.workDir, output: prompter && output !== 'json' ? 'plain' : output, signal: ac.signal, snapshot: fly.snapshot,
        from: flags.from, only: flags.only, prompter, hints: hintsFor(cmd),
      });
      const shown = chosen.targetSource ? { ...summary, targetSource: chosen.targetSource } : summary;
      if (output === 'json') process.stdout.write(`${JSON.stringify(shown, null, 2)}\n`);
      else process.stdout.write(`${formatDeploySummary(shown)}\n`);
      reportDeployToGithub(shown);
      process.exitCode = deployExitCode(summary, ac.signal.aborted);
    } finally {
      prompter?.close();
      await host.close();
    }
  }));

targetOptions(
  program
    .command('rollback')
    .description('put NAME.old (or a verified remote backup) back as live, restart, verify; the replaced data is kept')
    .option('--backup <name>', '"latest" or a backup file name from `chroma-ferry backups`')
    .option('--step', 'ask before each step: continue, skip or abort')
    .option('--plan', 'print every step and the exact commands it would run, as a sh script (with --json: as data); nothing is executed'),
).action(explainTargetSource(async (flags: TargetFlags & { backup?: string; step?: boolean; plan?: boolean }, cmd: Command) => {
  const chosen = chooseTarget(flags, cmd);
  const target = parseTarget(requireFlag('--target', chosen.target));
  const volume = parseVolume(chosen.volume);
  const dbDir = parseDbDir(flags.dbDir);
  const healthUrl = parseHealthUrl(flags.healthUrl);
  const healthTimeoutMs = parseDuration('--health-timeout', flags.healthTimeout);
  const restartTimeoutMs = parseRestartTimeout(flags.restartTimeout);
  if (flags.plan) {
    if (flags.step) throw new UserError('--plan prints the whole runbook: leave out --step');
    const host = createHost(target, { sshKey: parseSshKey(flags.sshKey), sshOptions: flags.sshOption, restartCmd: flags.restartCmd, machine: chosen.machine, flyInternalPort: chosen.internalPort });
    try {
      const plan = planRollback({ host, volume, dbDir, backup: flags.backup, healthUrl, healthTimeoutMs, restartTimeoutMs, targetSource: chosen.targetSource });
      process.stdout.write(flags.json ? `${JSON.stringify(plan, null, 2)}\n` : formatPlan(plan));
    } finally {
      await host.close();
    }
    return;
  }
  const prompter = flags.step ? terminalPrompter() : undefined;
  const output = prompter && !flags.json ? 'plain' : detectOutputMode(Boolean(flags.json));
  const host = createHost(target, { sshKey: parseSshKey(flags.sshKey), sshOptions: flags.sshOption, restartCmd: flags.restartCmd, machine: chosen.machine, flyInternalPort: chosen.internalPort });
  try {
    // An app that embeds Chroma (fly.toml checks it at its own path) has no Chroma API to proxy to: not checked here.
    const fly = await prepareFlyDeploy(host, { healthUrl, noVerify: !healthUrl && chosen.appHealthPath !== undefined });
    await confirmOrRefuse(`roll back ${volume}/${dbDir} on ${host.label}${chosen.targetSource ? ` (from ${chosen.targetSource})` : ''} to ${flags.backup ? `backup ${flags.backup}` : `${dbDir}.old`}?`, flags.yes);
    const ac = abortOnSignals();
    const summary = await runRollback({
      host, volume, dbDir, backup: flags.backup, healthUrl: fly.healthUrl, healthTimeoutMs, restartTimeoutMs, output, signal: ac.signal, prompter, hints: hintsFor(cmd),
    });
    const shown = chosen.targetSource ? { ...summary, targetSource: chosen.targetSource } : summary;
    process.stdout.write(output === 'json' ? `${JSON.stringify(shown, null, 2)}\n` : `${withTargetSourceLine(formatRollbackSummary(summary), summary.target, chosen.targetSource)}\n`);
    reportRollbackToGithub(shown);
    process.exitCode = summary.ok ? 0 : ac.signal.aborted ? 130 : 1;
  } finally {
    prompter?.close();
    await host.close();
  }
}));

registerBackupCommands(program);

volumeHostOptions(program.command('unlock').description('remove a stale deploy lock from the remote volume, then finish or reverse an interrupted swap'))
  .option('--yes', 'do not ask; required without a terminal')
  .action((flags: Omit<VolumeFlags, 'dbDir'> & { yes?: boolean }, cmd: Command) =>
    // The lock is the volume's (VOLUME/.ferry/lock): no Chroma dir name plays a part in it.
    withVolumeHost({ ...flags, dbDir: DEFAULT_DB_DIR }, cmd, async (host, layout) => {
      await requireVolume(host, layout);
      await confirmOrRefuse(`remove the deploy lock ${layout.lock} on ${host.label}?`, flags.yes);
      const r = await unlockVolume(host, layout.volume);
      process.stdout.write(r.removed ? `removed ${r.lock}\n` : `no lock at ${r.lock}\n`);
      for (const d of r.dirs) process.stdout.write(`${formatUnlocked(d)}\n`);
    }));

program
  .command('migrate')
  .description('move collections through the Chroma API: export, transform, validate, import in batches, verify (checkpoints, resume)')
  .option('--source-url <url>', 'Chroma server (http(s)://HOST:PORT; token from CHROMA_SOURCE_API_KEY or CHROMA_API_KEY), qdrant+http(s)://HOST:PORT, local persist dir, or .jsonl export; opened read-only')
  .option('--target-url <url>', 'Chroma server (token from CHROMA_TARGET_API_KEY or CHROMA_API_KEY), qdrant+http(s)://HOST:PORT (API key from QDRANT_API_KEY), persist dir (a new one as ./dir, /abs/dir or file:dir), or .jsonl file')
  .option('--source-tenant <name>', 'the source server\'s tenant (exact name; default: the token\'s tenant from /api/v2/auth/identity, else default_tenant)')
  .option('--source-database <name>', 'the source server\'s database (default: the token\'s only database, else default_database)')
  .option('--target-tenant <name>', 'the target server\'s tenant (as --source-tenant)')
  .option('--target-database <name>', 'the target server\'s database (as --source-database)')
  .option('--create-database', 'create a missing target tenant or database (else refused before any write)')
  .option('--qdrant-shards <n>', 'Qdrant target: shard_number of the collections the migration creates')
  .option('--qdrant-replication <n>', 'Qdrant target: replication_factor of the collections the migration creates')
  .option('--qdrant-ordering <o>', 'Qdrant target: write ordering of every upsert, weak | medium | strong (default: Qdrant\'s, weak)')
  .option('--batch-size <n>', 'records per write (default: the target\'s max batch size, capped by memory)')
  .option('--dry-run', 'export, transform and validate; write nothing to the target')
  .option('--plan', 'print the phases and what each would do here (read-only look at both ends); with --json as data')
  .option('--verbose', 'print every log event on stderr as well')
  .option('--checkpoint-dir <dir>', 'checkpoint, staging files and the pre-migration backup', 'migration_checkpoints')
  .option('--log-dir <dir>', 'JSON-lines log of the run', 'migration_logs')
  .option('--filter-collection <name>', 'migrate only this source collection (repeatable)', collect, [])
  .option('--resume', 'continue the run of the checkpoint in --checkpoint-dir')
  .option('--undo', 'reverse the last cutover recorded in --checkpoint-dir (renames: instant)')
  .option('--finalize', 'drop the previous versions kept in --checkpoint-dir (all, or all but --keep-previous runs\')')
  .option('--keep-previous <n>', 'cut-over runs whose previous versions are kept (default 1; with --finalize 0)')
  .option('--transform <spec>', 'none | seed-schema | ./file.ts (a module exporting one function)', 'none')
  .option('--prefix <name>', 'seed-schema: target collection prefix (default: from the source collection name)')
  .option('--rename <a=b>', 'write target collection a as b (repeatable)', collect, [])
  .option('--min-valid <share>', 'stop before any write when fewer records are valid', '0.95')
  .option('--workers <n>', 'collections exported and batches written in parallel', '2')
  .option('--verify-sample <n>', 'records per target collection compared field by field', '200')
  .option('--yes', 'do not ask; required without a terminal')
  .option('--json', 'print the summary as one JSON object')
  .action(migrateAction);

program
  .command('validate')
  .description('the validation gate: nine checks of the new database against the old one, every record compared; report.md + report.json; exit 0 PASSED, 1 FAILED, 3 WARNING')
  .option('--old-db-url <url>', 'the database migrated from (any form migrate accepts)')
  .option('--new-db-url <url>', 'the database migrated to')
  .option('--source-tenant <name>', 'the old database\'s tenant (Chroma; default default_tenant, or the token\'s from /api/v2/auth/identity; token from CHROMA_SOURCE_API_KEY or CHROMA_API_KEY)')
  .option('--source-database <name>', 'the old database\'s database (default default_database)')
  .option('--target-tenant <name>', 'the new database\'s tenant (token from CHROMA_TARGET_API_KEY or CHROMA_API_KEY); --auto-rollback restores into it')
  .option('--target-database <name>', 'the new database\'s database (default default_database)')
  .option('--transform <spec>', 'the transform the migration used: none | seed-schema | ./file.ts (default: the one the migration recorded, else none)')
  .option('--prefix <name>', 'seed-schema: the prefix the migration used (default: the recorded one)')
  .option('--checkpoint-dir <dir>', 'the migration\'s checkpoint dir: its transform and backup (default: migration_checkpoints, when it is of these two databases)')
  .option('--test-queries <file>', 'JSON list of { collection, embedding, k, where } to compare top-k for')
  .option('--queries <n>', 'query vectors sampled per old collection (without --test-queries)', '10')
  .option('--top-k <n>', 'results compared per query', '10')
  .option('--sample <n>', 'compare embeddings of N records per collection (default: all)')
  .option('--output <file>', 'Markdown report (a .json report is written beside it)', 'validation_report.md')
  .option('--auto-rollback', 'restore the new database from --backup when the gate FAILS')
  .option('--backup <file>', 'the pre-migration backup (migrate writes it in its checkpoint dir; its header records the transform)')
  .option('--yes', 'do not ask; required without a terminal')
  .option('--plan', 'print the steps, what each would read here and what a FAILED gate would restore (read-only look at both databases); with --json as data')
  .option('--json', 'print the report as one JSON object')
  .action(validateAction);

program
  .command('restore')
  .description('put a target\'s collections back to exactly a backup\'s content (collections the migration created removed)')
  .option('--backup <file>', 'backup .jsonl (migrate\'s pre-migration backup or any export)')
  .option('--target-url <url>', 'Chroma server or persist dir to restore (token from CHROMA_TARGET_API_KEY or CHROMA_API_KEY)')
  .option('--target-tenant <name>', 'the tenant to restore into (default default_tenant, or the token\'s from /api/v2/auth/identity)')
  .option('--target-database <name>', 'the database to restore into (default default_database); a missing one is refused before any write')
  .option('--report <file>', 'rollback report (default: BACKUP.restore-report.json)')
  .option('--sample <n>', 'records per collection compared after the restore', '200')
  .option('--plan', 'print the steps and the collections each would delete, re-create and fill here (read-only look at the backup and the target); with --json as data')
  .option('--yes', 'do not ask; required without a terminal')
  .option('--json', 'print the report as one JSON object')
  .action(restoreAction);

program
  .command('snapshot')
  .description('copy a Chroma persist dir consistently (retried while it changes) and write its per-collection counts')
  .requiredOption('--source <dir>', 'local Chroma persist dir')
  .requiredOption('--out <dir>', 'new or empty directory for the copy')
  .option('--manifest <file>', 'write the per-collection counts here (JSON)')
  .action(snapshotCommand);

program
  .command('pack')
  .description('tar + gzip a directory into checksummed chunks (chunk-000000, ... and manifest.json); prints archive_sha256=')
  .requiredOption('--dir <dir>', 'directory to pack (a snapshot)')
  .requiredOption('--out <dir>', 'directory for the chunks')
  .option('--chunk-size <size>', 'chunk size', '10MiB')
  .action(packCommand);

volumeOptions(
  program
    .command('verify')
    .description('check a Chroma server: heartbeat, collections and counts (against a manifest), query latency p95; or an app that embeds Chroma (--app-health-url); exit 0 healthy, 1 unhealthy')
    .option('--health-url <url>', 'Chroma server URL')
    .option('--app-health-url <url>', 'an app that embeds Chroma, instead of --health-url: answers 2xx; with --target also holds VOLUME/NAME/chroma.sqlite3 open and its counts, read there, match')
    .option('--manifest <file>', 'expected collections and counts (default with --target: the one the last deploy kept in VOLUME/.ferry)'),
)
  .option('--timeout <duration>', 'how long to wait for the server to answer', '60s')
  .option('--samples <n>', 'stored records sampled per collection and queried by their vectors (0: no latency check)', '20')
  .option('--top-k <n>', 'n_results of each timed query', '10')
  .option('--max-latency-ms <ms>', 'unhealthy when a query latency p95 is over this', '300')
  .action(async (flags: Omit<VerifyFlags, 'healthUrl'> & { healthUrl?: string; appHealthUrl?: string } & VolumeFlags, cmd: Command) => {
    if (flags.appHealthUrl !== undefined) return verifyAppCommand({ ...flags, appHealthUrl: flags.appHealthUrl }, cmd);
    const healthUrl = requireFlag(`--health-url (a Chroma server) or ${APP_HEALTH_FLAG} (an app that embeds Chroma)`, flags.healthUrl);
    // The target is read only when named: a ./fly.toml alone does not send verify to Fly.
    const named = flags.manifest === undefined && (flags.target !== undefined || flags.config !== undefined);
    const kept: KeptManifest | undefined = named ? async () => {
      let found: Awaited<ReturnType<KeptManifest>> | undefined;
      await withVolumeHost(flags, cmd, async (host, layout) => {
        await requireVolume(host, layout);
        found = { where: `${host.label} ${deployedManifestFile(layout)}`, collections: await readDeployedManifest(host, layout) };
      });
      return found!;
    } : undefined;
    await verifyCommand({ ...flags, healthUrl }, kept);
  });

// Benchmarks read the process's peak memory from here (bench/*.ts).
if (process.env.CHROMA_FERRY_REPORT_MAXRSS) process.on('exit', () => process.stderr.write(`maxrss_kb ${process.resourceUsage().maxRSS}\n`));

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    process.exitCode = e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.exitCode === 0 ? 0 : 2;
  } else {
    process.exitCode = reportFatal(e);
    annotateError(e instanceof Error ? e.message : String(e));
  }
}
