/**
 * Talking to a running Chroma server over plain HTTP (`fetch`), v2 API with a v1 fallback.
 *
 * Every request carries the server's token in the `x-chroma-token` header when there is one:
 * `token` given by the caller (null: none), else CHROMA_API_KEY from the environment
 * (lib/chroma/api-token.ts). A server that refuses it (401/403) is a ChromaAuthError.
 */
import { chromaToken, tokenHeaders, tokenVariables } from './api-token.ts';

export type ApiVersion = 'v2' | 'v1';

export interface ServedCollection {
  tenant: string;
  database: string;
  name: string;
  id: string;
  count: number;
}

export interface Scope {
  tenant: string;
  database: string;
}

/** The token to send: the caller's (null: none), else CHROMA_API_KEY. */
export type TokenChoice = string | null | undefined;

function authHeaders(token: TokenChoice): Record<string, string> {
  return tokenHeaders(token === undefined ? chromaToken() : token);
}

/** The server answered 401 or 403: no token, or not one it accepts. */
export class ChromaAuthError extends Error {
  constructor(url: string, status: number, token: TokenChoice, variables = tokenVariables()) {
    const sent = (token === undefined ? chromaToken() : token) ? 'refused the token' : 'wants a token';
    super(`Chroma at ${url} ${sent} (HTTP ${status}); put it in ${variables} (sent as the x-chroma-token header)`);
    this.name = 'ChromaAuthError';
  }
}

const DEFAULT_SCOPE: Scope = { tenant: 'default_tenant', database: 'default_database' };
const PAGE = 100;

function base(url: string): string {
  return url.replace(/\/+$/, '');
}

function describe(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause;
    if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'timed out';
    return cause instanceof Error ? `${e.message} (${cause.message})` : e.message;
  }
  return String(e);
}

/** Which API the server at `url` speaks; throws with a clear message when none answers. */
export async function heartbeat(url: string, timeoutMs = 5000, token?: TokenChoice): Promise<ApiVersion> {
  const deadline = AbortSignal.timeout(timeoutMs);
  const headers = authHeaders(token);
  let v2: Response;
  try {
    v2 = await fetch(`${base(url)}/api/v2/heartbeat`, { signal: deadline, headers });
  } catch (e) {
    throw new Error(`no Chroma server answers at ${url}: ${describe(e)}`);
  }
  await v2.body?.cancel();
  if (v2.ok) return 'v2';
  if (v2.status === 401 || v2.status === 403) throw new ChromaAuthError(url, v2.status, token);
  if (v2.status !== 404 && v2.status !== 405 && v2.status !== 410 && v2.status !== 501) {
    throw new Error(`Chroma heartbeat at ${url}/api/v2/heartbeat answered HTTP ${v2.status}`);
  }
  // Chroma 0.4–0.6 servers only have the v1 API.
  let v1: Response;
  try {
    v1 = await fetch(`${base(url)}/api/v1/heartbeat`, { signal: deadline, headers });
  } catch (e) {
    throw new Error(`no Chroma server answers at ${url}: ${describe(e)}`);
  }
  await v1.body?.cancel();
  if (v1.ok) return 'v1';
  if (v1.status === 401 || v1.status === 403) throw new ChromaAuthError(url, v1.status, token);
  throw new Error(`${url} is not a Chroma server: /api/v2/heartbeat answered HTTP ${v2.status}, /api/v1/heartbeat HTTP ${v1.status}`);
}

/** Poll `heartbeat` until it answers, the timeout passes or `signal` aborts. */
export async function waitForHeartbeat(
  url: string,
  opts: { timeoutMs: number; intervalMs?: number; signal?: AbortSignal; token?: TokenChoice },
): Promise<ApiVersion> {
  const deadline = Date.now() + opts.timeoutMs;
  const interval = opts.intervalMs ?? 250;
  let last: unknown;
  for (;;) {
    if (opts.signal?.aborted) throw new Error(`waiting for Chroma at ${url}: aborted`);
    const left = deadline - Date.now();
    try {
      return await heartbeat(url, Math.max(100, Math.min(left, 5000)), opts.token);
    } catch (e) {
      if (e instanceof ChromaAuthError) throw e; // waiting longer does not change the answer
      last = e;
    }
    if (Date.now() + interval > deadline) break;
    await sleep(interval, opts.signal);
  }
  throw new Error(`Chroma at ${url} did not answer within ${opts.timeoutMs} ms: ${describe(last)}`);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

async function getJson(url: string, token?: TokenChoice): Promise<{ status: number; body: unknown }> {
  return requestJson(url, {}, token);
}

/** POST a JSON body; the answer parsed as JSON (or kept as text). */
export async function postJson(url: string, body: unknown, o: { signal?: AbortSignal; token?: TokenChoice } = {}): Promise<{ status: number; body: unknown }> {
  return requestJson(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: o.signal }, o.token);
}

async function requestJson(url: string, init: RequestInit, token: TokenChoice): Promise<{ status: number; body: unknown }> {
  const timeout = AbortSignal.timeout(30_000);
  const headers = { ...(init.headers as Record<string, string> | undefined), ...authHeaders(token) };
  const r = await fetch(url, { ...init, headers, signal: init.signal ? AbortSignal.any([init.signal, timeout]) : timeout });
  const text = await r.text();
  let body: unknown = text;
  try { body = JSON.parse(text); } catch { /* keep the text */ }
  return { status: r.status, body };
}

function missingScope(status: number, body: unknown): boolean {
  if (status === 404) return true;
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return status >= 400 && status < 500 && /not ?found|does not exist/i.test(text);
}

/** One collection's endpoint (`count`, `get`, `query`) in the API the server speaks. */
export function collectionUrl(url: string, api: ApiVersion, scope: Scope, id: string, op: 'count' | 'get' | 'query'): string {
  const t = encodeURIComponent(scope.tenant);
  const d = encodeURIComponent(scope.database);
  const c = encodeURIComponent(id);
  return api === 'v2'
    ? `${base(url)}/api/v2/tenants/${t}/databases/${d}/collections/${c}/${op}`
    : `${base(url)}/api/v1/collections/${c}/${op}?tenant=${t}&database=${d}`;
}

export function fail(what: string, status: number, body: unknown): never {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const hint = status === 401 || status === 403 ? ` (set ${tokenVariables()}: sent as the x-chroma-token header)` : '';
  throw new Error(`${what}: HTTP ${status}${hint}: ${text.slice(0, 300)}`);
}

/** Every collection served in `scopes` with its record count, sorted by tenant, database, name. */
export async function listCollectionCounts(url: string, scopes: Scope[] = [DEFAULT_SCOPE], o: { token?: TokenChoice } = {}): Promise<ServedCollection[]> {
  const api = await heartbeat(url, 5000, o.token);
  const out: ServedCollection[] = [];
  for (const scope of scopes) {
    const t = encodeURIComponent(scope.tenant);
    const d = encodeURIComponent(scope.database);
    const listUrl = (offset: number) =>
      api === 'v2'
        ? `${base(url)}/api/v2/tenants/${t}/databases/${d}/collections?limit=${PAGE}&offset=${offset}`
        : `${base(url)}/api/v1/collections?tenant=${t}&database=${d}&limit=${PAGE}&offset=${offset}`;

    const found: { id: string; name: string }[] = [];
    for (let offset = 0; ; offset += PAGE) {
      const { status, body } = await getJson(listUrl(offset), o.token);
      if (status !== 200) {
        if (missingScope(status, body)) break; // no such tenant/database: nothing served there
        fail(`listing collections of ${scope.tenant}/${scope.database} at ${url}`, status, body);
      }
      if (!Array.isArray(body)) fail(`listing collections at ${url}`, status, body);
      for (const c of body as { id: string; name: string }[]) found.push({ id: String(c.id), name: String(c.name) });
      if (body.length < PAGE) break;
    }
    for (const c of found) {
      const { status, body } = await getJson(collectionUrl(url, api, scope, c.id, 'count'), o.token);
      if (status !== 200 || typeof body !== 'number') fail(`counting ${scope.tenant}/${scope.database}/${c.name} at ${url}`, status, body);
      out.push({ tenant: scope.tenant, database: scope.database, name: c.name, id: c.id, count: body });
    }
  }
  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return out.sort((a, b) => cmp(a.tenant, b.tenant) || cmp(a.database, b.database) || cmp(a.name, b.name));
}
