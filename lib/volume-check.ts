import { RemoteCommandError, UserError } from './errors.ts';
import type { RemoteHost } from './hosts/remote-host.ts';
import type { RemoteLayout } from './remote-layout.ts';
import { parseKv, probeScript } from './remote-scripts.ts';
import { remoteScript, type RemoteScript } from './shell.ts';

/**
 * The first look at a volume of every command that works on it: the remote has the tools the
 * scripts use and the volume is a directory. Refusals are UserErrors (nothing changed yet).
 * Returns the probe's key=value lines (writable, df, live, old) for the caller's own checks.
 */
export async function checkVolume(host: RemoteHost, layout: RemoteLayout, signal?: AbortSignal): Promise<Map<string, string>> {
  const probe = parseKv((await host.run(probeScript(layout), { signal })).stdout);
  const missing = (probe.get('missing') ?? '').trim();
  if (missing) throw new UserError(`${host.label} lacks required tools: ${missing}; install them on the remote host`);
  if (probe.get('volume') !== 'dir') throw noVolume(host, layout);
  return probe;
}

/** volumeStateScript's exit status when the volume is not a directory. */
const NO_VOLUME_STATUS = 3;

/** Is the volume a directory (else exit 3), and is the live dir in it? Reads only. */
export function volumeStateScript(l: RemoteLayout): RemoteScript {
  return remoteScript('check that the volume exists', `
    [ -d "$1" ] || exit ${NO_VOLUME_STATUS}
    if [ -d "$2" ]; then echo "live=yes"; else echo "live=no"; fi
  `, [l.volume, l.live]);
}

/**
 * The volume of a command that only looks at it or maintains it (backups, unlock): refused in one
 * line (UserError) when it does not exist, so a typo is never answered with "nothing there".
 * Needs nothing but sh on the remote. Returns whether the live dir exists.
 */
export async function requireVolume(host: RemoteHost, layout: RemoteLayout, signal?: AbortSignal): Promise<{ live: boolean }> {
  try {
    const r = await host.run(volumeStateScript(layout), { signal });
    return { live: parseKv(r.stdout).get('live') === 'yes' };
  } catch (e) {
    if (e instanceof RemoteCommandError && e.exitCode === NO_VOLUME_STATUS) throw noVolume(host, layout);
    throw e;
  }
}

function noVolume(host: RemoteHost, layout: RemoteLayout): UserError {
  return new UserError(`volume ${layout.volume} does not exist on ${host.label}; create it or fix --volume`);
}
