/** 10. cleanup: the remote work files (incoming chunks, the trashed .old), the lock, this run's dir. Undo: none, the deploy is done. */
import { cleanupScript, unlockScript } from '../../../lib/remote/scripts.ts';
import { chainScripts, runChain } from '../../../lib/remote/chain.ts';
import { removeRunDir } from '../../../lib/engine/run-dir.ts';
import { done } from '../../../lib/engine/runner.ts';
import type { Step } from '../../../lib/engine/step.ts';
import type { RemoteScript } from '../../../lib/remote/shell.ts';
import { removeSwapTrashScript } from '../../../lib/volume/deploy-swap.ts';
import { incomingOf, trashOf, type DeployCtx, type DeployFacts, type DeployPlanCtx } from '../context.ts';

type CleanupResult = Record<string, never>;

const scripts = {
  cleanup: (f: DeployFacts) => cleanupScript(incomingOf(f), trashOf(f)),
  /** The trashed previous NAME.old, only as the volume allows (lib/volume/deploy-swap.ts). */
  trash: (f: DeployFacts) => removeSwapTrashScript(f.layout, f.runId),
  unlock: (f: DeployFacts) => unlockScript(f.layout, f.runId),
  /**
   * The three in one remote command (one round trip), in this order; a failure stops there, the
   * lock still held. A run's closing state write (runDeploy's) goes just before the release.
   */
  all: (f: DeployFacts, closingState?: RemoteScript) => chainScripts('remove remote work files and the trashed previous NAME.old, release the deploy lock',
    [scripts.cleanup(f), scripts.trash(f), ...(closingState ? [closingState] : []), scripts.unlock(f)]),
};

export const cleanup: Step<DeployCtx, DeployPlanCtx, CleanupResult> = {
  name: 'cleanup',
  title: 'cleanup: work files and lock',
  needs: ['package'],
  undoText: 'none: the deploy is done',

  async run(c) {
    const { o } = c;
    await runChain(o.host, scripts.all(c, c.closingStateWrite?.()), { signal: o.signal });
    c.lockReleased = true;
    c.stack.drop('lock');
    c.stack.clear(); // the deploy is done: nothing left to undo
    try {
      await o.uploader.cleanupAfterSuccess?.();
    } catch (e) {
      // The deploy is verified: a leftover elsewhere (bucket objects) is a warning, not a failure.
      c.summary.warnings.push(e instanceof Error ? e.message : String(e));
    }
    await removeRunDir(c.runDir, o.source);
    return done();
  },

  plan(p) {
    return {
      commands: [
        p.remote(scripts.all(p), 'removed= the trashed previous NAME.old, or nothing when the volume still needs it'),
        p.local('remove the local work dir (this run\'s own dir only)', ['rm', '-rf', p.runDir]),
      ],
      notes: [],
    };
  },

  result: {
    save: () => ({}),
    parse: () => ({}),
    load() {},
  },
};
