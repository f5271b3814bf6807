/**
 * The HTTP forwarding the test proxies in front of a real Chroma server share (fault-proxy.ts,
 * token-proxy.ts): each request is read whole, then the proxy's handler either answers it itself
 * or forwards it to the upstream server (its body as received, or changed), the upstream answer
 * piped back as it is.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request, read whole. */
export interface ProxiedRequest {
  method: string;
  /** The path and query, as received. */
  url: string;
  pathname: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** What a handler does with a request: exactly one of these, once. */
export interface ProxyReply {
  /** Answer it here, with a JSON body; nothing reaches the upstream server. */
  json(status: number, body: unknown): void;
  /** Forward it (with `body` instead of the one received, if given); `onEnd` when the upstream answer has been passed on. */
  forward(o?: { body?: Buffer; onEnd?: () => void }): void;
}

export interface ForwardingProxy {
  url: string;
  close(): Promise<void>;
}

export async function startForwardingProxy(upstream: string, handle: (req: ProxiedRequest, reply: ProxyReply) => void): Promise<ForwardingProxy> {
  const to = new URL(upstream);
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const received = Buffer.concat(chunks);
      const url = req.url ?? '/';
      const reply: ProxyReply = {
        json: (status, body) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body)),
        forward: (o = {}) => {
          const body = o.body ?? received;
          const headers: http.OutgoingHttpHeaders = { ...req.headers, host: to.host, 'content-length': String(body.length) };
          delete headers['transfer-encoding'];
          const fwd = http.request({ host: to.hostname, port: to.port, method: req.method, path: url, headers }, (up) => {
            res.writeHead(up.statusCode ?? 502, up.headers);
            up.pipe(res);
            if (o.onEnd) up.on('end', o.onEnd);
          });
          fwd.on('error', () => res.destroy());
          fwd.end(body);
        },
      };
      handle({ method: req.method ?? 'GET', url, pathname: new URL(url, 'http://x').pathname, headers: req.headers, body: received }, reply);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
