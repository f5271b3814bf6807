/**
 * `chromadb` clients for a server URL, with the token, the tenant and database, and a fetch that
 * backs off when the server is busy: an answer 429 (rate limited: Chroma Cloud's quotas) or 503
 * (unavailable) is sent again after an exponential, jittered pause (p-retry), for every call the
 * client makes (reads, writes, counts, identity). Other answers reach the client as they are.
 */
import {
  AdminClient, ChromaClient, ChromaClientError, ChromaForbiddenError, ChromaNotFoundError, ChromaQuotaExceededError,
  ChromaRateLimitError, ChromaServerError, ChromaUnauthorizedError, ChromaUniqueError,
} from 'chromadb';
import pRetry from 'p-retry';
import { tokenHeaders } from './api-token.ts';

/** A tenant and a database of a Chroma server. */
export interface ChromaScope {
  tenant: string;
  database: string;
}

export const DEFAULT_SCOPE: ChromaScope = { tenant: 'default_tenant', database: 'default_database' };

/** Answers that mean "busy, ask again later". */
export const BUSY_STATUSES: ReadonlySet<number> = new Set([429, 503]);

/** The backoff on a busy answer: 0.25 s doubling to 8 s, each pause randomized (x1-2), 8 retries (~1 min). */
export const BUSY_RETRY = { retries: 8, minTimeout: 250, maxTimeout: 8000, factor: 2, randomize: true } as const;

type Fetch = (input: Request) => Promise<Response>;

/** The server stayed busy (or answered another error): what the chromadb client would have thrown. */
async function chromaErrorOf(r: Response): Promise<Error> {
  const text = await r.text().catch(() => '');
  let message = `${r.status}: ${r.statusText}`;
  try {
    const body = JSON.parse(text) as { message?: string; error?: string };
    message = body.message || body.error || message;
  } catch { /* not JSON */ }
  switch (r.status) {
    case 400: return new ChromaClientError(`Bad request to ${r.url || 'Chroma'} with status: ${message}`);
    case 401: return new ChromaUnauthorizedError('Unauthorized');
    case 403: return new ChromaForbiddenError('You do not have permission to access the requested resource.');
    case 404: return new ChromaNotFoundError('The requested resource could not be found');
    case 409: return new ChromaUniqueError('The resource already exists');
    case 422: return /^(Quota|Billing limit) exceeded/.test(message) ? new ChromaQuotaExceededError(message) : new ChromaClientError(message);
    case 429: return new ChromaRateLimitError(`Rate limit exceeded (still after ${BUSY_RETRY.retries} retries)`);
    default: return new ChromaServerError(r.status === 503 ? `${message} (HTTP 503, still after ${BUSY_RETRY.retries} retries)` : message);
  }
}

class BusyAnswer extends Error {
  constructor(readonly response: Response) {
    super(`HTTP ${response.status}`);
  }
}

/** A fetch for the chromadb client: busy answers retried with jittered backoff, then mapped to the client's errors. */
export function busyRetryingFetch(retry: Parameters<typeof pRetry>[1] = BUSY_RETRY): Fetch {
  return async (request: Request) => {
    let last: Response;
    try {
      last = await pRetry(async () => {
        const r = await fetch(request.clone());
        if (BUSY_STATUSES.has(r.status)) {
          await r.body?.cancel();
          throw new BusyAnswer(r);
        }
        return r;
      }, { ...retry, shouldRetry: (e) => e instanceof BusyAnswer });
    } catch (e) {
      if (!(e instanceof BusyAnswer)) throw e;
      last = e.response;
    }
    if (last.ok) return last;
    throw await chromaErrorOf(last);
  };
}

interface ApiClientHolder {
  apiClient: { setConfig(c: { fetch: Fetch }): unknown };
}

/** Put the busy-retrying fetch under a chromadb client (its collections share the same API client). */
function withBusyRetry<T extends ChromaClient | AdminClient>(client: T): T {
  (client as unknown as ApiClientHolder).apiClient.setConfig({ fetch: busyRetryingFetch() });
  return client;
}

function serverOf(url: string): { host: string; port: number; ssl: boolean } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || (u.protocol === 'https:' ? 443 : 80)), ssl: u.protocol === 'https:' };
}

/**
 * A `chromadb` client for a server URL (http or https, default ports); `token` goes in the
 * x-chroma-token header; `scope`: the tenant and database (without one, the client's own choice:
 * CHROMA_TENANT / CHROMA_DATABASE, else what GET /api/v2/auth/identity names).
 */
export function chromaClientFor(url: string, token?: string | null, scope?: ChromaScope): ChromaClient {
  const headers = tokenHeaders(token);
  return withBusyRetry(new ChromaClient({
    ...serverOf(url), ...(scope ? { tenant: scope.tenant, database: scope.database } : {}),
    ...(Object.keys(headers).length ? { headers } : {}),
  }));
}

/** The tenants-and-databases client for a server URL (same token and backoff). */
export function chromaAdminFor(url: string, token?: string | null): AdminClient {
  const headers = tokenHeaders(token);
  return withBusyRetry(new AdminClient({ ...serverOf(url), ...(Object.keys(headers).length ? { headers } : {}) }));
}
