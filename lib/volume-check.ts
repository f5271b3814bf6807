import type { RemoteHost } from './hosts/remote-host.ts';
import type { RemoteLayout } from './remote-layout.ts';
import { parseKv, probeScript } from './remote-scripts.ts';
import { runRefusing } from './remote/refusals.ts';

/**
 * The first look at a volume of every command that works on it: the remote has the tools the
 * scripts use and the volume is a directory (with `minFreeBytes` free, when given). The probe
 * refuses through its status; each refusal is a UserError with its line from
 * lib/remote/refusals.ts (nothing changed yet). Returns the probe's key=value lines (writable,
 * df, live, old) for the caller's own checks.
 */
export async function checkVolume(host: RemoteHost, layout: RemoteLayout, signal?: AbortSignal, minFreeBytes = 0): Promise<Map<string, string>> {
  return parseKv((await runRefusing(host, probeScript(layout, minFreeBytes), { volume: layout.volume }, { signal })).stdout);
}
