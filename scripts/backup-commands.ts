/**
 * Day-2 backup commands: `backup` (a verified backup now, with retention), `backups` (the list),
 * `backups pull NAME --to DIR` and `backups push NAME --to s3://BUCKET/PREFIX`. Each parses its
 * flags, runs one operation of lib/backups/operations.ts or lib/backups/push.ts and prints key=value lines
 * (or one JSON object with --json).
 */
import type { Command } from 'commander';
import { UserError } from '../lib/common/errors.ts';
import { backupNow, pullBackup } from '../lib/backups/operations.ts';
import { listVolumeBackups } from '../lib/backups/catalog.ts';
import { abortOnSignals, parseNonNegativeNumber, parsePositiveInt, requireFlag, type TargetFlags } from '../lib/cli/support.ts';
import { defaultRegion, parseS3Endpoint, parseS3Url, registerAwsEnvSecrets } from '../lib/transfer/s3-config.ts';
import { formatBytes } from '../lib/common/units.ts';
import { hintsFor, volumeOptions, withVolumeHost } from './volume-options.ts';

type VolumeFlags = Pick<TargetFlags, 'target' | 'volume' | 'machine' | 'config' | 'dbDir' | 'sshKey' | 'sshOption' | 'json'>;

export function registerBackupCommands(program: Command): void {
  volumeOptions(program.command('backup').description('make a verified backup archive of the live Chroma dir on the remote now (under the deploy lock), then apply retention'))
    .option('--keep-backups <n>', 'then keep at most N backups, the new one included')
    .option('--keep-days <d>', 'then remove backups taken more than D days ago (the UTC stamp in their names); the new one is always kept')
    .action(backupCommand);

  const backups = volumeOptions(program.command('backups').description('list the remote backup archives (name, size, date, sha256); pull or push one'))
    .enablePositionalOptions()
    .action(listCommand);

  volumeOptions(backups.command('pull').description('download a remote backup into a local directory, sha256-verified against the remote'))
    .argument('<name>', '"latest" or a backup file name from `chroma-ferry backups`')
    .option('--to <dir>', 'local directory (created if missing)')
    .action(pullCommand);

  volumeOptions(backups.command('push').description('the remote host uploads a backup to S3/R2 through a presigned URL; verified from here (size, sha256)'))
    .argument('<name>', '"latest" or a backup file name from `chroma-ferry backups`')
    .option('--to <url>', 's3://BUCKET/PREFIX: the object is PREFIX/NAME')
    .option('--s3-endpoint <url>', 'R2 or other S3-compatible endpoint (path-style); omit for AWS S3')
    .option('--s3-region <region>', 'region (default: AWS_REGION, AWS_DEFAULT_REGION or auto)')
    .action(pushCommand);
}

async function listCommand(flags: VolumeFlags, cmd: Command): Promise<void> {
  await withVolumeHost(flags, cmd, async (host, layout) => {
    const list = await listVolumeBackups(host, layout);
    if (flags.json) printJson(list);
    else if (!list.length) process.stdout.write(`no backups in ${layout.backups}\n`);
    else for (const b of list) process.stdout.write(`${b.name}  ${formatBytes(b.bytes).padStart(10)}  ${b.date}  ${b.sha256}\n`);
  });
}

async function backupCommand(flags: VolumeFlags & { keepBackups?: string; keepDays?: string }, cmd: Command): Promise<void> {
  const policy = {
    keepCount: flags.keepBackups === undefined ? undefined : parsePositiveInt('--keep-backups', flags.keepBackups),
    keepDays: flags.keepDays === undefined ? undefined : parseNonNegativeNumber('--keep-days', flags.keepDays),
  };
  await withVolumeHost(flags, cmd, (host, layout) => interruptible('no backup kept; the lock is released', async (signal) => {
    const r = await backupNow({ host, layout, policy, volumeFlag: flags.volume, signal, hints: hintsFor(cmd) });
    if (flags.json) printJson({ ok: true, ...r });
    else printLines([
      `backup=${r.backup.name}`, `path=${r.backup.path}`, `bytes=${r.backup.bytes}`, `sha256=${r.backup.sha256}`, `entries=${r.backup.entries}`, `attempts=${r.backup.attempts}`,
      ...r.removed.map((x) => `removed=${x.name}`),
    ]);
  }));
}

async function pullCommand(name: string, flags: VolumeFlags & { to?: string }, cmd: Command): Promise<void> {
  const toDir = requireFlag('--to', flags.to);
  await withVolumeHost(flags, cmd, (host, layout) => interruptible('nothing kept', async (signal) => {
    const r = await pullBackup({ host, layout, name, toDir, signal });
    if (!r.recordedSha256) process.stderr.write(`warning: ${r.name} has no sha256 recorded at backup time; checked against the sum computed on the remote now\n`);
    if (flags.json) printJson({ ok: true, ...r });
    else printLines([`pulled=${r.name}`, `file=${r.file}`, `bytes=${r.bytes}`, `sha256=${r.sha256}`, `status=${r.status}`]);
  }));
}

async function pushCommand(name: string, flags: VolumeFlags & { to?: string; s3Endpoint?: string; s3Region?: string }, cmd: Command): Promise<void> {
  registerAwsEnvSecrets();
  const to = parseS3Url(requireFlag('--to', flags.to));
  const endpoint = parseS3Endpoint(flags.s3Endpoint);
  const region = flags.s3Region || defaultRegion();
  await withVolumeHost(flags, cmd, (host, layout) => interruptible('the object may be incomplete: push again', async (signal) => {
    // Loaded on use: the AWS SDK is not needed by the other backup commands.
    const { pushBackup } = await import('../lib/backups/push.ts');
    const r = await pushBackup({ host, layout, name, to, endpoint, region, signal });
    if (flags.json) printJson({ ok: true, ...r, verified: ['size', 'sha256'] });
    else printLines([`pushed=${r.name}`, `object=${r.object}`, `bytes=${r.bytes}`, `sha256=${r.sha256}`, 'verified=size,sha256', `tool=${r.tool}`]);
  }));
}

/** Run with Ctrl-C / SIGTERM turned into a cancel; a cancelled run says what it left and exits 130. */
async function interruptible(leftAfterCancel: string, fn: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const ac = abortOnSignals();
  try {
    await fn(ac.signal);
  } catch (e) {
    // A UserError after a cancel is something to act on (a lock left behind): reported as is.
    if (!ac.signal.aborted || e instanceof UserError) throw e;
    process.stderr.write(`chroma-ferry: interrupted: ${leftAfterCancel}\n`);
    process.exitCode = 130;
  }
}

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

function printLines(lines: string[]): void {
  process.stdout.write(`${lines.join('\n')}\n`);
}
