/**
 * The manifest of the data a deploy put live, kept on the volume (`.ferry/manifest-NAME.json`,
 * written atomically once the deploy's verify step is through) so that a later `chroma-ferry
 * verify --target ...` knows which collections and counts the server should serve. A rollback
 * removes it: the data it describes is no longer live.
 */
import type { SqliteManifest } from '../chroma/sqlite-manifest.ts';
import type { RemoteHost } from '../hosts/remote-host.ts';
import { deployedManifestFile, type RemoteLayout } from '../remote/layout.ts';
import { readFileScript, writeFileScript } from '../remote/scripts.ts';
import { remoteScript, type RemoteScript } from '../remote/shell.ts';
import type { ExpectedCollection } from '../serving/verify-serving.ts';

export interface DeployedManifest extends SqliteManifest {
  runId: string;
  deployedAt: string;
  /** false when the deploy ran without --health-url (the counts were never checked on a server). */
  verified: boolean;
}

export function keepDeployedManifestScript(l: RemoteLayout, m: SqliteManifest, runId: string, verified: boolean, deployedAt = new Date()): RemoteScript {
  const kept: DeployedManifest = { ...m, runId, deployedAt: deployedAt.toISOString(), verified };
  return writeFileScript(deployedManifestFile(l), JSON.stringify(kept), 'keep the deployed manifest');
}

export function dropDeployedManifestScript(l: RemoteLayout): RemoteScript {
  return remoteScript('remove the deployed manifest (its data is no longer live)', 'rm -f "$1"', [deployedManifestFile(l)]);
}

/** The expected collections of a manifest (ours or `snapshot --manifest`'s); null when it is not one. */
export function expectedCollectionsOf(json: unknown): ExpectedCollection[] | null {
  const cols = (json as { collections?: unknown } | null)?.collections;
  if (!Array.isArray(cols)) return null;
  const ok = cols.every((c: Partial<ExpectedCollection>) =>
    typeof c?.tenant === 'string' && typeof c.database === 'string' && typeof c.name === 'string' && Number.isInteger(c.count));
  return ok ? cols.map((c: ExpectedCollection) => ({ tenant: c.tenant, database: c.database, name: c.name, count: c.count })) : null;
}

/** The expected collections of the kept manifest; null when no deploy kept one; throws when it is not a manifest. */
export async function readDeployedManifest(host: RemoteHost, l: RemoteLayout, signal?: AbortSignal): Promise<ExpectedCollection[] | null> {
  const file = deployedManifestFile(l);
  const text = (await host.run(readFileScript(file, 'read the deployed manifest'), { signal })).stdout;
  if (!text.trim()) return null;
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch { /* reported below */ }
  const expected = expectedCollectionsOf(json);
  if (!expected) throw new Error(`${file} on ${host.label} is not a manifest (damaged?); pass --manifest FILE, or deploy again to rewrite it`);
  return expected;
}
