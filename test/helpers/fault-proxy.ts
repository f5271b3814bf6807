/**
 * A Chroma server behind a proxy that injects one fault at a known point, for the staged-cutover
 * tests (no token, every other request forwarded as it is):
 * - `flipFirstUpsert`: the first record upsert has its first embedding sign-flipped on the way
 *   (a silent change the gate must catch);
 * - `failRename: N`: the Nth collection rename (PUT .../collections/{id} with `new_name`) is
 *   answered 500 and not forwarded (a cutover interrupted between two renames);
 * - `holdRename: N`: the Nth rename is held, never forwarded nor answered, and `held` resolves
 *   (the test SIGKILLs the migration there: killed between two renames, at a known point).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FaultProxy {
  url: string;
  /** Renames forwarded or refused so far. */
  readonly renames: number;
  /** Resolves when the rename `holdRename` names has arrived (and is held). */
  readonly held: Promise<void>;
  close(): Promise<void>;
}

export async function startFaultProxy(upstream: string, o: { flipFirstUpsert?: boolean; failRename?: number; holdRename?: number }): Promise<FaultProxy> {
  const to = new URL(upstream);
  let flipped = false;
  let renames = 0;
  let onHeld: () => void = () => undefined;
  const held = new Promise<void>((resolve) => { onHeld = resolve; });
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      const pathname = new URL(req.url ?? '/', 'http://x').pathname;
      if (o.flipFirstUpsert && !flipped && req.method === 'POST' && pathname.endsWith('/upsert')) {
        const j = JSON.parse(body.toString('utf8')) as { embeddings: (number[] | string)[] };
        const first = j.embeddings[0]!;
        if (typeof first === 'string') {
          // base64 of little-endian float32 values (the client's encoding when the server supports it)
          const b = Buffer.from(first, 'base64');
          for (let i = 0; i < b.length; i += 4) b.writeFloatLE(-b.readFloatLE(i), i);
          j.embeddings[0] = b.toString('base64');
        } else j.embeddings[0] = first.map((x) => -x);
        body = Buffer.from(JSON.stringify(j));
        flipped = true;
      }
      if (req.method === 'PUT' && /\/collections\/[^/]+$/.test(pathname) && 'new_name' in (JSON.parse(body.toString('utf8') || '{}') as object)) {
        renames++;
        if (renames === o.failRename) return res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'InternalError', message: 'injected' }));
        if (renames === o.holdRename) return onHeld();
      }
      const headers = { ...req.headers, host: to.host, 'content-length': String(body.length) };
      const fwd = http.request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      fwd.on('error', () => res.destroy());
      fwd.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get renames() { return renames; },
    held,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
