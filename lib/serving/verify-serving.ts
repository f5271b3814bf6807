import { listCollectionCounts, waitForHeartbeat, type ServedCollection } from '../chroma/http.ts';

export interface ExpectedCollection {
  tenant: string;
  database: string;
  name: string;
  count: number;
}

export interface ServingCheck {
  api: 'v2' | 'v1';
  served: ServedCollection[];
  mismatches: string[];
}

/** tenant/database/name: how a collection is named in reports. */
export function collectionKey(c: { tenant: string; database: string; name: string }): string {
  return `${c.tenant}/${c.database}/${c.name}`;
}

/** Compare what a server serves with what it should serve: same collections, same counts. */
export function compareCounts(expected: ExpectedCollection[], served: ExpectedCollection[]): string[] {
  const key = collectionKey;
  const have = new Map(served.map((c) => [key(c), c.count]));
  const want = new Map(expected.map((c) => [key(c), c.count]));
  const out: string[] = [];
  for (const [k, n] of want) {
    const got = have.get(k);
    if (got === undefined) out.push(`${k}: missing (expected ${n} records)`);
    else if (got !== n) out.push(`${k}: ${got} records, expected ${n}`);
  }
  for (const [k, n] of have) if (!want.has(k)) out.push(`${k}: unexpected collection (${n} records)`);
  return out;
}

/**
 * Wait for the heartbeat, then for the served counts to equal the expected ones. Once the server
 * answers, a mismatch gets `settleMs` more to clear (a server that has just started), then fails.
 */
export async function waitUntilServing(
  url: string,
  expected: ExpectedCollection[],
  o: { timeoutMs: number; settleMs?: number; signal?: AbortSignal },
): Promise<ServingCheck> {
  const api = await waitForHeartbeat(url, { timeoutMs: o.timeoutMs, intervalMs: 25, signal: o.signal });
  const scopes = uniqueScopes(expected);
  const deadline = Date.now() + (o.settleMs ?? 5000);
  for (;;) {
    let served: ServedCollection[] = [];
    let mismatches: string[];
    try {
      served = await listCollectionCounts(url, scopes);
      mismatches = compareCounts(expected, served);
    } catch (e) {
      mismatches = [`listing collections failed: ${e instanceof Error ? e.message : String(e)}`];
    }
    if (mismatches.length === 0 || Date.now() > deadline) return { api, served, mismatches };
    o.signal?.throwIfAborted();
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function uniqueScopes(cols: { tenant: string; database: string }[]): { tenant: string; database: string }[] {
  const seen = new Map<string, { tenant: string; database: string }>();
  for (const c of cols) seen.set(`${c.tenant}/${c.database}`, { tenant: c.tenant, database: c.database });
  if (seen.size === 0) seen.set('default', { tenant: 'default_tenant', database: 'default_database' });
  return [...seen.values()];
}
