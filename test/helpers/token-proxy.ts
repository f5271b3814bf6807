/**
 * A Chroma server behind token auth, for tests: every request must carry `x-chroma-token: TOKEN`
 * (else 401, not forwarded); accepted ones are forwarded as they are to the real server.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TokenProxy {
  url: string;
  /** Requests forwarded (they carried the token). */
  accepted: number;
  /** Requests refused with 401 (no token or another one). */
  refused: number;
  close(): Promise<void>;
}

export async function startTokenProxy(upstream: string, token: string): Promise<TokenProxy> {
  const to = new URL(upstream);
  const state = { accepted: 0, refused: 0 };
  const server = http.createServer((req, res) => {
    if (req.headers['x-chroma-token'] !== token) {
      state.refused++;
      req.resume();
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"Unauthorized"}');
      return;
    }
    state.accepted++;
    const fwd = http.request(
      { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: { ...req.headers, host: to.host } },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    fwd.on('error', () => res.destroy());
    req.pipe(fwd);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get accepted() { return state.accepted; },
    get refused() { return state.refused; },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
