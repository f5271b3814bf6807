/**
 * The release of this run's deploy lock, wherever a run ends: the cleanup's own remote command
 * (which writes the closing state just before it), a partial run (`--from`/`--only`) after its
 * save, and an unwound run at its end, after the closing save (the lock's undo leaves the release
 * there: `lockReleasePending`). From the release on, the remote state is the next lock holder's:
 * this run writes only this machine's copy (`lockReleased`).
 */
import { unlockScript } from '../../lib/remote/scripts.ts';
import { withReconnect } from '../../lib/volume/deploy-swap.ts';
import type { DeployCtx } from './context.ts';

export async function releaseLock(c: DeployCtx): Promise<void> {
  c.lockReleasePending = false;
  await withReconnect(() => c.o.host.run(unlockScript(c.layout, c.runId)));
  c.lockReleased = true;
  c.stack.drop('lock');
}
