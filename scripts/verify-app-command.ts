/**
 * `chroma-ferry verify --app-health-url URL`: an app that embeds Chroma (no Chroma API to query).
 * The app answers 2xx; with `--target` also: a process there holds VOLUME/NAME/chroma.sqlite3 open
 * (by inode), and the counts read there from that file (python3 sqlite3, read-only) equal the
 * manifest (`--manifest FILE`, else the one the last deploy kept on the volume).
 * Exit 0 healthy, 1 unhealthy, 2 bad input.
 */
import type { Command } from 'commander';
import { parseDuration } from '../lib/cli/support.ts';
import { UserError } from '../lib/common/errors.ts';
import { deployedManifestFile } from '../lib/remote/layout.ts';
import { annotateError, appendStepSummary } from '../lib/report/github.ts';
import { APP_HEALTH_FLAG, appHealthMarkdown, checkAppServes, formatAppHealthReport, parseAppHealthUrl, type AppServingReport } from '../lib/serving/app-health.ts';
import type { ExpectedCollection } from '../lib/serving/verify-serving.ts';
import { requireVolume } from '../lib/volume/check.ts';
import { readDeployedManifest } from '../lib/volume/deployed-manifest.ts';
import { readManifestFile, type VerifyFlags } from './local-commands.ts';
import { withVolumeHost } from './volume-options.ts';

/** The latency flags query a Chroma server: they have no meaning for an app's URL. */
const CHROMA_ONLY = [['samples', '--samples'], ['topK', '--top-k'], ['maxLatencyMs', '--max-latency-ms']] as const;

export async function verifyAppCommand(
  flags: Omit<VerifyFlags, 'healthUrl'> & { healthUrl?: string; appHealthUrl: string } & Parameters<typeof withVolumeHost>[0],
  cmd: Command,
): Promise<void> {
  if (flags.healthUrl !== undefined) {
    throw new UserError(`--health-url and ${APP_HEALTH_FLAG} do not go together: give --health-url for a Chroma server, ${APP_HEALTH_FLAG} for an app that embeds Chroma`);
  }
  const url = parseAppHealthUrl(flags.appHealthUrl)!;
  for (const [key, flag] of CHROMA_ONLY) {
    if (cmd.getOptionValueSource(key) === 'cli') throw new UserError(`${flag} applies to --health-url (query latency of a Chroma server): drop it with ${APP_HEALTH_FLAG}`);
  }
  const timeoutMs = parseDuration('--timeout', flags.timeout);
  const fromFile = flags.manifest !== undefined ? await readManifestFile(flags.manifest) : undefined;
  // The target is read only when named: a ./fly.toml alone does not send verify to Fly.
  const named = flags.target !== undefined || flags.config !== undefined;

  let report: AppServingReport;
  let manifest: string | null = flags.manifest ?? null;
  if (named) {
    report = await withVolumeHost(flags, cmd, async (host, layout) => {
      await requireVolume(host, layout);
      let expected: ExpectedCollection[] | undefined = fromFile;
      let noCountsWhy: string | undefined;
      if (!expected) {
        const where = `${host.label} ${deployedManifestFile(layout)}`;
        const kept = await readDeployedManifest(host, layout);
        if (kept) {
          expected = kept;
          manifest = where;
        } else {
          noCountsWhy = `no manifest of a deploy at ${where} (and no --manifest)`;
        }
      }
      return checkAppServes({ url, remote: { host, layout }, expected, noCountsWhy, timeoutMs });
    });
  } else {
    if (fromFile) throw new UserError(`--manifest needs --target with ${APP_HEALTH_FLAG}: the counts are read on the remote, from the live dir`);
    report = await checkAppServes({ url, timeoutMs });
  }
  process.stdout.write(flags.json ? `${JSON.stringify({ ...report, manifest }, null, 2)}\n` : `${formatAppHealthReport(report, manifest)}\n`);
  appendStepSummary(appHealthMarkdown(report, manifest));
  if (!report.healthy && !flags.json) annotateError(`the app at ${url} is unhealthy: ${report.problems.join('; ')}`, 'chroma-ferry verify');
  process.exitCode = report.healthy ? 0 : 1;
}
