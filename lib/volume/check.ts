import type { RemoteHost } from '../hosts/remote-host.ts';
import type { RemoteLayout } from '../remote/layout.ts';
import { parseKv, probeScript } from '../remote/scripts.ts';
import { refuseSh, runRefusing } from '../remote/refusals.ts';
import { remoteScript, type RemoteScript } from '../remote/shell.ts';

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

/** Is the volume a directory (else the no-volume refusal), and is the live dir in it? Reads only. */
export function volumeStateScript(l: RemoteLayout): RemoteScript {
  return remoteScript('check that the volume exists', `
    [ -d "$1" ] || ${refuseSh('no-volume')}
    if [ -d "$2" ]; then echo "live=yes"; else echo "live=no"; fi
  `, [l.volume, l.live]);
}

/**
 * The volume of a command that only looks at it or maintains it (backups, unlock): refused in one
 * line (UserError, lib/remote/refusals.ts) when it does not exist, so a typo is never answered
 * with "nothing there". Needs nothing but sh on the remote. Returns whether the live dir exists.
 */
export async function requireVolume(host: RemoteHost, layout: RemoteLayout, signal?: AbortSignal): Promise<{ live: boolean }> {
  const r = await runRefusing(host, volumeStateScript(layout), { volume: layout.volume }, { signal });
  return { live: parseKv(r.stdout).get('live') === 'yes' };
}
