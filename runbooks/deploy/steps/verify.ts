/**
 * 9. verify: the restarted server answers and serves every collection with the manifest's count
 * (`--health-url`); or, for an app that embeds Chroma (`--app-health-url`), the app answers 2xx, a
 * process on the remote holds the new VOLUME/NAME/chroma.sqlite3 open, and the counts read there
 * equal the manifest (lib/serving/app-health.ts). Then the manifest is kept on the volume
 * (.ferry/manifest-NAME.json) for `chroma-ferry verify --target`. Undo: none.
 */
import { keepDeployedManifestScript } from '../../../lib/volume/deployed-manifest.ts';
import { done, skipped } from '../../../lib/engine/runner.ts';
import type { Step } from '../../../lib/engine/step.ts';
import { waitUntilServing, type ExpectedCollection } from '../../../lib/serving/verify-serving.ts';
import { APP_HEALTH_FLAG, appServingNote, checkAppServes, liveSqliteFile } from '../../../lib/serving/app-health.ts';
import { countCollectionsScript } from '../../../lib/remote/sqlite-counts.ts';
import { servedFilesScript } from '../../../lib/volume/served-file.ts';
import { chainScripts, runChain } from '../../../lib/remote/chain.ts';
import { recordVerifiedScript } from '../../../lib/volume/data-id.ts';
import { withReconnect } from '../../../lib/volume/deploy-swap.ts';
import { manifestOf, nextDataIdOf, recordOf, type DeployCtx, type DeployFacts, type DeployPlanCtx } from '../context.ts';

type VerifyResult = { verified: boolean };

const scripts = {
  /** The live data's manifest, kept for `chroma-ferry verify --target` (lib/volume/deployed-manifest.ts). */
  keepManifest: (f: DeployFacts, verified: boolean) => keepDeployedManifestScript(f.layout, manifestOf(f), f.runId, verified, f.now()),
  /**
   * The live data's id as the last verified one (also with --no-verify: it is what the user chose
   * to serve, so the volume reconciles clean and NAME.old may be replaced by a later deploy).
   */
  record: (f: DeployFacts) => recordVerifiedScript(f.layout, nextDataIdOf(f)),
  /** Both in one remote command (one round trip), the manifest first; a failure stops there. */
  keepAndRecord: (f: DeployFacts, verified: boolean) =>
    chainScripts('keep the deployed manifest, then record the verified data', [scripts.keepManifest(f, verified), scripts.record(f)]),
  /** `--app-health-url`: the live collections counted on the remote (python3 sqlite3, read-only). */
  countLive: (f: DeployFacts) => countCollectionsScript(liveSqliteFile(f.layout)),
  /** `--app-health-url`: the processes that hold the live chroma.sqlite3 open (by device and inode, through /proc). */
  heldLive: (f: DeployFacts) => servedFilesScript([liveSqliteFile(f.layout)]),
};

export const verify: Step<DeployCtx, DeployPlanCtx, VerifyResult> = {
  name: 'verify',
  title: 'verify: the server (or app) answers and its counts equal the manifest',
  needs: ['manifest', 'swap'],
  undoText: 'none',

  /**
   * The wait for the restarted server (heartbeat, then the counts) starts alongside the state write
   * of this step's start: it only reads, and the downtime window ends with it.
   */
  ahead(c, signal) {
    const { o } = c;
    if (o.appHealthUrl || !o.healthUrl) return;
    const ahead = waitUntilServing(o.healthUrl, manifestOf(c).collections, { timeoutMs: o.healthTimeoutMs, signal });
    ahead.catch(() => undefined); // awaited by run; aborted with the step when its start is not recorded
    c.servingAhead = ahead;
  },

  async run(c) {
    const { o } = c;
    const keepManifest = async () => {
      // A refusal of the record (the volume changed) is its one line, as before the two were chained.
      const chain = scripts.keepAndRecord(c, c.summary.verified);
      await withReconnect(() => runChain(o.host, chain, { signal: o.signal, refusing: [chain.parts[1]!], volume: c.layout.volume }), { signal: o.signal });
    };
    if (o.appHealthUrl) {
      const report = await checkAppServes({
        url: o.appHealthUrl, remote: { host: o.host, layout: c.layout }, expected: manifestOf(c).collections, timeoutMs: o.healthTimeoutMs, signal: o.signal,
      });
      c.summary.appServing = report;
      if (!report.healthy) throw new Error(`the restarted app does not serve the deployed data: ${report.problems.join('; ')}`);
      for (const n of report.notes) c.summary.warnings.push(`verify: ${n}`);
      if (c.swapStartedAt !== undefined) c.summary.downtimeMs = performance.now() - c.swapStartedAt;
      c.summary.verified = true;
      await keepManifest();
      return done(appServingNote(report));
    }
    if (!o.healthUrl) {
      const why = o.noVerify ? '--no-verify' : 'no --health-url';
      c.summary.warnings.push(`${why}: the deployed data was not verified on a running server`);
      await keepManifest();
      return skipped(why);
    }
    const expected: ExpectedCollection[] = manifestOf(c).collections;
    const check = await (c.servingAhead ?? waitUntilServing(o.healthUrl, expected, { timeoutMs: o.healthTimeoutMs, signal: o.signal }));
    c.servingAhead = undefined;
    if (check.mismatches.length) throw new Error(`the restarted server does not serve the deployed data: ${check.mismatches.join('; ')}`);
    if (c.swapStartedAt !== undefined) c.summary.downtimeMs = performance.now() - c.swapStartedAt;
    c.summary.verified = true;
    await keepManifest();
    return done(`${expected.length} collections, counts equal (API ${check.api})`);
  },

  plan(p) {
    const verified = Boolean(p.o.healthUrl || p.o.appHealthUrl);
    const timeout = `${Math.round(p.o.healthTimeoutMs / 1000)}s`;
    return {
      commands: [
        ...(p.o.appHealthUrl
          ? [p.local('the app answers 2xx', [...p.cli, 'verify', APP_HEALTH_FLAG, p.o.appHealthUrl, '--timeout', timeout], 'healthy'),
              p.remote(scripts.heldLive(p), 'held=PID: a process holds the new chroma.sqlite3 open (unknown=WHY: not checked)'),
              p.remote(scripts.countLive(p), 'counted=[...] with the manifest\'s counts (skipped=WHY where the remote has no python3 with sqlite3)')]
          : []),
        ...(p.o.healthUrl
          ? [p.local('heartbeat and every collection count equal to the manifest', [...p.cli, 'verify', '--health-url', p.o.healthUrl, '--manifest', p.manifestFile,
              '--timeout', timeout, '--samples', '0'], 'healthy')]
          : []),
        p.remote(scripts.keepAndRecord(p, verified),
          'nothing printed: the manifest of the live data is kept for chroma-ferry verify --target, then the live data recorded as the last verified (.ferry/verified-NAME)'),
      ],
      notes: verified ? [] : ['no --health-url: check the server by hand (chroma-ferry verify --health-url URL --manifest MANIFEST)'],
    };
  },

  result: {
    save: (c) => ({ verified: c.summary.verified }),
    parse: (raw) => ({ verified: recordOf(raw, 'verify').verified === true }),
    load(c, r) {
      // Verified by the recorded run: this run (`--from cleanup`) ends a verified deploy.
      if (r.verified) c.summary.verified = true;
    },
  },
};
