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
import { startForwardingProxy } from './forwarding-proxy.ts';

export interface FaultProxy {
  url: string;
  /** Renames forwarded or refused so far. */
  readonly renames: number;
  /** Resolves when the rename `holdRename` names has arrived (and is held). */
  readonly held: Promise<void>;
  close(): Promise<void>;
}

export async function startFaultProxy(upstream: string, o: { flipFirstUpsert?: boolean; failRename?: number; holdRename?: number }): Promise<FaultProxy> {
  let flipped = false;
  let renames = 0;
  let onHeld: () => void = () => undefined;
  const held = new Promise<void>((resolve) => { onHeld = resolve; });
  const proxy = await startForwardingProxy(upstream, (req, reply) => {
    let body = req.body;
    if (o.flipFirstUpsert && !flipped && req.method === 'POST' && req.pathname.endsWith('/upsert')) {
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
    if (req.method === 'PUT' && /\/collections\/[^/]+$/.test(req.pathname) && 'new_name' in (JSON.parse(body.toString('utf8') || '{}') as object)) {
      renames++;
      if (renames === o.failRename) return reply.json(500, { error: 'InternalError', message: 'injected' });
      if (renames === o.holdRename) return onHeld();
    }
    reply.forward({ body });
  });
  return {
    url: proxy.url,
    get renames() { return renames; },
    held,
    close: () => proxy.close(),
  };
}
