/**
 * 5. verify: the server answers and lists its collections, with counts; what is live recorded as
 * the verified data, and the last deploy's kept manifest dropped once it no longer describes that
 * data (a rollback killed before its cleanup leaves no stale manifest for `verify --target`).
 * Undo: none.
 */
import { listCollectionCounts, waitForHeartbeat } from '../../../lib/chroma/http.ts';
import { done, skipped } from '../../../lib/engine/runner.ts';
import type { Step } from '../../../lib/engine/step.ts';
import { renderArgv } from '../../../lib/remote/shell.ts';
import { recordLiveVerifiedScript, withReconnect } from '../../../lib/volume/deploy-swap.ts';
import { dropDeployedManifestScript } from '../../../lib/volume/deployed-manifest.ts';
import { oldDataIdOf, type RollbackCtx, type RollbackFacts, type RollbackPlanCtx } from '../context.ts';

const scripts = {
  record: (f: RollbackFacts) => recordLiveVerifiedScript(f.layout, oldDataIdOf(f)),
  dropManifest: (f: RollbackFacts) => dropDeployedManifestScript(f.layout),
};

export const verify: Step<RollbackCtx, RollbackPlanCtx> = {
  name: 'verify',
  title: 'verify: the server answers and lists its collections',
  undoText: 'none',

  async run(c) {
    const { o } = c;
    // What is live now recorded as the last verified data (also without a check: the user chose to serve it).
    const record = async () => {
      await withReconnect(() => o.host.run(scripts.record(c), { signal: o.signal }), { signal: o.signal });
      // The kept manifest describes the data a deploy put live: gone unless that data is still live
      // (mode live after an undone deploy; not after an interrupted rollback, which replaced it).
      if (c.mode !== 'live' || c.finishesRollback) await withReconnect(() => o.host.run(scripts.dropManifest(c), { signal: o.signal }), { signal: o.signal });
    };
    if (!o.healthUrl) {
      c.summary.warnings.push('no --health-url: the restored data was not checked on a running server');
      await record();
      return skipped('no --health-url');
    }
    await waitForHeartbeat(o.healthUrl, { timeoutMs: o.healthTimeoutMs, signal: o.signal });
    c.summary.served = await listCollectionCounts(o.healthUrl);
    await record();
    return done(`${c.summary.served.length} collections served`);
  },

  plan(p) {
    return {
      commands: p.o.healthUrl
        ? [{ what: 'the server answers and lists its collections', via: 'this machine', expect: 'healthy',
            command: renderArgv([...p.cli, 'verify', '--health-url', p.o.healthUrl, '--timeout', `${Math.round(p.o.healthTimeoutMs / 1000)}s`]) }, p.remote(scripts.record(p), 'verified=ID'), p.remote(scripts.dropManifest(p))]
        : [p.remote(scripts.record(p), 'verified=ID'), p.remote(scripts.dropManifest(p))],
      notes: p.o.healthUrl ? [] : ['no --health-url: check the server by hand'],
    };
  },
};
