/**
 * A real TLS endpoint for the https paths of the remote's HTTP clients: a throw-away CA whose
 * certificate a client trusts through `SSL_CERT_FILE` (OpenSSL's, hence openssl s_client's and
 * python3's, default CA file) or `NODE_EXTRA_CA_CERTS` (the CLI's SDK), a server certificate it
 * signed for the given DNS names and IP addresses, made with this machine's `openssl`, and a TLS
 * proxy that terminates TLS and forwards the bytes to a plain TCP port (s3rver).
 */
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { execa } from 'execa';

export interface TestCert {
  dir: string;
  /** The CA certificate (PEM): what a client must trust. */
  caFile: string;
  ca: string;
  key: string;
  cert: string;
  remove(): Promise<void>;
}

/** Why this machine cannot make test certificates, or undefined. */
export async function opensslUnavailable(): Promise<string | undefined> {
  const r = await execa('openssl', ['version'], { reject: false });
  return r.exitCode === 0 ? undefined : 'openssl is not installed on this machine: the https tests cannot make certificates';
}

/** A CA and a server certificate it signed for `names` (DNS) and `ips`. */
export async function makeTestCert(o: { names?: string[]; ips?: string[] }): Promise<TestCert> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-tls-'));
  const f = (n: string) => path.join(dir, n);
  const run = (args: string[]) => execa('openssl', args, { cwd: dir, stdin: 'ignore' });
  await run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem',
    '-days', '2', '-subj', '/CN=chroma-ferry test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  await run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key', '-out', 'server.csr',
    '-subj', `/CN=${o.names?.[0] ?? o.ips?.[0] ?? 'server'}`]);
  const san = [...(o.names ?? []).map((n) => `DNS:${n}`), ...(o.ips ?? []).map((ip) => `IP:${ip}`)].join(',');
  await fs.writeFile(f('ext.cnf'), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
  await run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'ext.cnf']);
  return {
    dir,
    caFile: f('ca.pem'),
    ca: await fs.readFile(f('ca.pem'), 'utf8'),
    key: await fs.readFile(f('server.key'), 'utf8'),
    cert: await fs.readFile(f('server.pem'), 'utf8'),
    remove: () => fs.rm(dir, { recursive: true, force: true }),
  };
}

export interface TlsProxy {
  port: number;
  stop(): Promise<void>;
}

/** TLS on 127.0.0.1:PORT with `cert`, each connection's bytes forwarded to 127.0.0.1:`targetPort`. */
export async function startTlsProxy(targetPort: number, cert: Pick<TestCert, 'key' | 'cert'>): Promise<TlsProxy> {
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({ key: cert.key, cert: cert.cert }, (client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => { client.destroy(); upstream.destroy(); });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.on('tlsClientError', () => { /* a client that refused our certificate: what some tests want */ });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
