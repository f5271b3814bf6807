import { UserError } from './errors.ts';
import type { RemoteHost } from './hosts/remote-host.ts';
import type { RemoteLayout } from './remote-layout.ts';
import { parseKv, probeScript } from './remote-scripts.ts';

/**
 * The first look at a volume of every command that works on it: the remote has the tools the
 * scripts use and the volume is a directory. Refusals are UserErrors (nothing changed yet).
 * Returns the probe's key=value lines (writable, df, live, old) for the caller's own checks.
 */
export async function checkVolume(host: RemoteHost, layout: RemoteLayout, signal?: AbortSignal): Promise<Map<string, string>> {
  const probe = parseKv((await host.run(probeScript(layout), { signal })).stdout);
  const missing = (probe.get('missing') ?? '').trim();
  if (missing) throw new UserError(`${host.label} lacks required tools: ${missing}; install them on the remote host`);
  if (probe.get('volume') !== 'dir') throw new UserError(`volume ${layout.volume} does not exist on ${host.label}; create it or fix --volume`);
  return probe;
}
