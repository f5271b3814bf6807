/**
 * A Chroma server behind token auth, for tests: every request must carry `x-chroma-token: TOKEN`
 * (else 401, not forwarded); accepted ones are forwarded as they are to the real server.
 *
 * Options make it answer like a busy or a Cloud server, deterministically (counters, no clock):
 * - `rateLimitEvery: N`: the Nth, 2Nth, ... record write (add/upsert/update) is answered 429 and
 *   not forwarded;
 * - `unavailableOnce: 'read' | 'write'`: the first record read (get) or write is answered 503;
 * - `identity`: served at GET /api/v2/auth/identity (the token's tenant and databases), as Cloud does;
 * - `maxBatchSize`: reported at GET /api/v2/pre-flight-checks instead of the server's own.
 * It measures what it forwards: the largest number of records in one request (ids of a write or
 * get, `limit` of a paged get) and the most writes in flight at once on one collection.
 */
import { startForwardingProxy } from './forwarding-proxy.ts';

export interface ProxyOptions {
  rateLimitEvery?: number;
  unavailableOnce?: 'read' | 'write';
  identity?: { tenant: string; databases: string[] };
  maxBatchSize?: number;
}

export interface TokenProxy {
  url: string;
  /** Requests forwarded (they carried the token). */
  accepted: number;
  /** Requests refused with 401 (no token or another one). */
  refused: number;
  /** Record writes received (answered 429 or 503 included). */
  writes: number;
  /** Busy answers given, by status. */
  busy: { 429: number; 503: number };
  /** The most records in one forwarded request (write ids, get ids or get limit). */
  largestRequest: number;
  /** The most writes forwarded and not yet answered at once, on one collection. */
  peakWritesInFlight: number;
  /** Identity and pre-flight requests answered by the proxy itself. */
  servedLocally: number;
  close(): Promise<void>;
}

const RECORD_OP = /^\/api\/v2\/tenants\/[^/]+\/databases\/[^/]+\/collections\/([^/]+)\/(add|upsert|update|get)$/;

export async function startTokenProxy(upstream: string, token: string, o: ProxyOptions = {}): Promise<TokenProxy> {
  const state = { accepted: 0, refused: 0, writes: 0, largestRequest: 0, peakWritesInFlight: 0, servedLocally: 0, busy: { 429: 0, 503: 0 } };
  let unavailableGiven = false;
  const inFlight = new Map<string, number>();

  const proxy = await startForwardingProxy(upstream, (req, reply) => {
    if (req.headers['x-chroma-token'] !== token) {
      state.refused++;
      return reply.json(401, { error: 'Unauthorized' });
    }
    const { pathname } = req;
    if (req.method === 'GET' && o.identity && pathname === '/api/v2/auth/identity') {
      state.servedLocally++;
      return reply.json(200, { user_id: 'ferry-test-user', tenant: o.identity.tenant, databases: o.identity.databases });
    }
    if (req.method === 'GET' && o.maxBatchSize && pathname === '/api/v2/pre-flight-checks') {
      state.servedLocally++;
      return reply.json(200, { max_batch_size: o.maxBatchSize, supports_base64_encoding: true });
    }
    const op = req.method === 'POST' ? RECORD_OP.exec(pathname) : null;
    const isWrite = op !== null && op[2] !== 'get';
    if (op) {
      const parsed = JSON.parse(req.body.toString('utf8') || '{}') as { ids?: unknown[]; limit?: number };
      state.largestRequest = Math.max(state.largestRequest, parsed.ids?.length ?? 0, parsed.limit ?? 0);
      if (isWrite) state.writes++;
      if (o.unavailableOnce && !unavailableGiven && (o.unavailableOnce === 'write') === isWrite) {
        unavailableGiven = true;
        state.busy[503]++;
        return reply.json(503, { error: 'Unavailable', message: 'try again' });
      }
      if (isWrite && o.rateLimitEvery && state.writes % o.rateLimitEvery === 0) {
        state.busy[429]++;
        return reply.json(429, { error: 'RateLimited', message: 'Rate limit exceeded' });
      }
    }
    state.accepted++;
    const collection = isWrite ? op![1]! : undefined;
    if (!collection) return reply.forward();
    const n = (inFlight.get(collection) ?? 0) + 1;
    inFlight.set(collection, n);
    state.peakWritesInFlight = Math.max(state.peakWritesInFlight, n);
    reply.forward({ onEnd: () => inFlight.set(collection, inFlight.get(collection)! - 1) });
  });
  return {
    url: proxy.url,
    get accepted() { return state.accepted; },
    get refused() { return state.refused; },
    get writes() { return state.writes; },
    get busy() { return { ...state.busy }; },
    get largestRequest() { return state.largestRequest; },
    get peakWritesInFlight() { return state.peakWritesInFlight; },
    get servedLocally() { return state.servedLocally; },
    close: () => proxy.close(),
  };
}
