/**
 * The remote's HTTP transfers (lib/remote/http-transfer.ts), each tool of the chain on this
 * machine through a LocalHost, against real local servers: an HTTP one and TLS ones (a test CA
 * trusted through SSL_CERT_FILE; certificates for a name, an IP or both). What arrives is the
 * body, whole, by Content-Length or chunked framing; a PUT sends the file whole; a non-2xx
 * status, a body cut short, an untrusted certificate or a certificate for another host fails with
 * one line that holds no URL; while a request is in flight, no process shows the URL's signature
 * in its command line or environment. Then the CLI on a remote with no tool of the chain: one
 * line, exit 2, before anything changed.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { execa } from 'execa';
import { RemoteCommandError } from '../lib/common/errors.ts';
import { LocalHost } from '../lib/hosts/local.ts';
import { fetchUrlScript, putFileToUrlScript, urlStdin, type HttpTool } from '../lib/remote/http-transfer.ts';
import { deployArgs, digestTree, makeDeployEnv, runCli, type DeployEnv } from './helpers/deploy-env.ts';
import { canScanProcesses, processesShowing, type ProcessHit } from './helpers/proc-scan.ts';
import { assertNoSecrets, startS3, type TestS3 } from './helpers/s3.ts';
import { makeTestCert, opensslUnavailable, type TestCert } from './helpers/tls.ts';

const SIGNATURE = crypto.randomBytes(32).toString('hex');
const QUERY = `?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=${SIGNATURE}`;
/** 1 MiB + 7 bytes of noise: several reads and writes, not a round size. */
const BODY = crypto.randomBytes(1024 * 1024 + 7);
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

interface Seen {
  method: string;
  path: string;
  /** PUT: what arrived and the Content-Length it came with. */
  bytes?: number;
  sha256?: string;
  contentLength?: string;
  shownBy: ProcessHit[];
}

interface TestServer {
  origin: string;
  seen: Seen[];
  stop(): Promise<void>;
}

/** The routes: /ok (Content-Length), /chunked, /short and /short-chunked (cut off midway), /denied (403, S3 XML echoing the URL), PUT /put, PUT /put-denied. */
function handler(seen: Seen[]): http.RequestListener {
  return (req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const entry: Seen = { method: req.method ?? '', path: u.pathname, shownBy: processesShowing(SIGNATURE) };
    seen.push(entry);
    const half = BODY.subarray(0, BODY.length >> 1);
    if (req.method === 'PUT' && u.pathname === '/put-denied') {
      res.writeHead(403, { 'content-type': 'application/xml', connection: 'close' });
      res.end(`<Error><Code>AccessDenied</Code><Resource>${req.url}</Resource></Error>`);
      return;
    }
    if (req.method === 'PUT') {
      const parts: Buffer[] = [];
      req.on('data', (d: Buffer) => parts.push(d));
      req.on('end', () => {
        const body = Buffer.concat(parts);
        Object.assign(entry, { bytes: body.length, sha256: sha(body), contentLength: req.headers['content-length'] });
        res.writeHead(200, { 'content-length': 0 });
        res.end();
      });
      return;
    }
    switch (u.pathname) {
      case '/ok':
        res.writeHead(200, { 'content-length': BODY.length });
        res.end(BODY);
        return;
      case '/chunked':
        res.writeHead(200, { 'content-type': 'application/octet-stream' }); // no length: Node frames it chunked
        for (let i = 0; i < BODY.length; i += 100_003) res.write(BODY.subarray(i, i + 100_003));
        res.end();
        return;
      case '/short':
        res.writeHead(200, { 'content-length': BODY.length });
        res.write(half, () => res.socket?.destroy());
        return;
      case '/short-chunked':
        res.writeHead(200);
        res.write(half, () => res.socket?.destroy());
        return;
      default:
        res.writeHead(403, { 'content-type': 'application/xml' });
        res.end(`<Error><Code>AccessDenied</Code><Resource>${req.url}</Resource></Error>`);
    }
  };
}

async function startServer(cert?: TestCert): Promise<TestServer> {
  const seen: Seen[] = [];
  const server = cert ? https.createServer({ key: cert.key, cert: cert.cert }, handler(seen)) : http.createServer(handler(seen));
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  server.on('tlsClientError', () => { /* a client that refused the certificate */ });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    origin: `${cert ? 'https' : 'http'}://127.0.0.1:${port}`,
    seen,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function hasTool(tool: string): Promise<boolean> {
  return (await execa('sh', ['-c', 'command -v "$1"', 'has', tool], { reject: false })).exitCode === 0;
}

/** The failure of a transfer: its exit status and stderr (the test fails if it succeeded). */
async function failure(p: Promise<unknown>): Promise<RemoteCommandError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof RemoteCommandError) return e;
    throw e;
  }
  assert.fail('the transfer succeeded');
}

const TOOLS: { tool: HttpTool; binary: string; https: boolean }[] = [
  { tool: 'curl', binary: 'curl', https: false },
  { tool: 'wget', binary: 'wget', https: false },
  { tool: 'python3', binary: 'python3', https: true },
  { tool: 'perl', binary: 'perl', https: false },
  { tool: 'perl-openssl', binary: 'openssl', https: true },
];

describe('HTTP transfers by each tool of the chain (LocalHost, local servers)', () => {
  let dir: string;
  let plain: TestServer;
  let both: TestServer;
  let nameOnly: TestServer;
  let ipOnly: TestServer;
  let certs: TestCert[] = [];
  let noTls: string | undefined;
  const host = new LocalHost('/');
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-http-'));
    await fs.writeFile(path.join(dir, 'upload.bin'), BODY);
    plain = await startServer();
    noTls = await opensslUnavailable();
    if (noTls) return;
    // One CA for all: the certificates differ in the names they hold.
    const full = await makeTestCert({ names: ['localhost'], ips: ['127.0.0.1'] });
    const name = await makeTestCert({ names: ['localhost'] });
    const ip = await makeTestCert({ ips: ['127.0.0.1'] });
    certs = [full, name, ip];
    await fs.writeFile(path.join(dir, 'cas.pem'), certs.map((c) => c.ca).join(''));
    both = await startServer(full);
    nameOnly = await startServer(name);
    ipOnly = await startServer(ip);
  });
  after(async () => {
    for (const s of [plain, both, nameOnly, ipOnly]) await s?.stop();
    for (const c of certs) await c.remove();
    await fs.rm(dir, { recursive: true, force: true });
  });

  const get = (tool: HttpTool, url: string, file: string) => host.run(fetchUrlScript(file, tool), { stdin: urlStdin(tool, url) });
  const put = (tool: HttpTool, url: string, file: string) => host.run(putFileToUrlScript(file, tool), { stdin: urlStdin(tool, url) });
  /** Run with the test CAs as the only trusted ones (or none: `undefined` keeps the system store). */
  async function trusting<T>(caFile: string | undefined, fn: () => Promise<T>): Promise<T> {
    const prev = process.env.SSL_CERT_FILE;
    if (caFile) process.env.SSL_CERT_FILE = caFile;
    else delete process.env.SSL_CERT_FILE;
    try {
      return await fn();
    } finally {
      if (prev === undefined) delete process.env.SSL_CERT_FILE;
      else process.env.SSL_CERT_FILE = prev;
    }
  }
  function noUrlIn(e: RemoteCommandError): void {
    assert.ok(!e.stderr.includes(SIGNATURE) && !e.stderr.includes('X-Amz'), `the URL in stderr: ${e.stderr}`);
    assert.ok(e.stderr.trim().length > 0 || e.exitCode > 0);
  }
  function noProcessShowedIt(s: TestServer): void {
    if (!canScanProcesses()) return;
    assert.ok(s.seen.length > 0, 'no request reached the server: nothing was checked');
    for (const r of s.seen) assert.deepEqual(r.shownBy, [], `${r.method} ${r.path}: a process showed the signature`);
  }

  for (const { tool, binary, https: overTls } of TOOLS) {
    const skipWhy = async (t: TestContext, tls = false): Promise<boolean> => {
      const why = !(await hasTool(binary)) ? `${binary} is not installed` : tls && noTls ? noTls : !(await hasTool(tool.startsWith('perl') ? 'perl' : binary)) ? 'perl is not installed' : undefined;
      if (!why) return false;
      process.stderr.write(`\n!!! WARNING: ${why}: the ${tool} transfer tests are SKIPPED\n\n`);
      t.skip(why);
      return true;
    };

    if (tool !== 'perl-openssl') {
      it(`${tool} over http: GET by Content-Length and chunked, whole; PUT whole; 403, short bodies fail with no URL in the line`, async (t) => {
        if (await skipWhy(t)) return;
        plain.seen.length = 0;
        const file = path.join(dir, `${tool}.get`);
        for (const route of ['/ok', '/chunked']) {
          await get(tool, `${plain.origin}${route}${QUERY}`, file);
          assert.equal(sha(await fs.readFile(file)), sha(BODY), `${route}: the body, whole`);
        }
        await put(tool, `${plain.origin}/put${QUERY}`, path.join(dir, 'upload.bin'));
        const p = plain.seen.find((r) => r.method === 'PUT')!;
        assert.deepEqual([p.bytes, p.sha256, p.contentLength], [BODY.length, sha(BODY), String(BODY.length)], 'the file went whole, with its length');
        for (const route of ['/denied', '/short', '/short-chunked']) {
          const e = await failure(get(tool, `${plain.origin}${route}${QUERY}`, file));
          noUrlIn(e);
          if (route === '/denied' && tool !== 'wget') assert.match(e.stderr, /403/);
          if (tool === 'python3' || tool === 'perl') {
            assert.equal(e.exitCode, route === '/denied' ? 22 : 18, e.stderr);
            assert.equal(e.stderr.trim().split('\n').length, 1, e.stderr);
            await assert.rejects(fs.access(file), `${route}: the partial file is removed`);
          }
        }
        const e = await failure(put(tool, `${plain.origin}/put-denied${QUERY}`, path.join(dir, 'upload.bin')));
        noUrlIn(e);
        noProcessShowedIt(plain);
      });
    }

    if (overTls) {
      it(`${tool} over https: the certificate is checked against the CA store and the host name; GET and PUT whole`, async (t) => {
        if (await skipWhy(t, true)) return;
        both.seen.length = 0;
        const file = path.join(dir, `${tool}.tls`);
        const cas = path.join(dir, 'cas.pem');
        await trusting(cas, async () => {
          for (const url of [`${both.origin}/ok${QUERY}`, `${both.origin.replace('127.0.0.1', 'localhost')}/chunked${QUERY}`]) {
            await get(tool, url, file);
            assert.equal(sha(await fs.readFile(file)), sha(BODY), url.split('?')[0]);
          }
          await put(tool, `${both.origin}/put${QUERY}`, path.join(dir, 'upload.bin'));
          assert.equal(both.seen.find((r) => r.method === 'PUT')?.sha256, sha(BODY));
          for (const route of ['/denied', '/short', '/short-chunked']) {
            const e = await failure(get(tool, `${both.origin}${route}${QUERY}`, file));
            noUrlIn(e);
            assert.equal(e.exitCode, route === '/denied' ? 22 : 18, e.stderr);
          }
          // A certificate for another host: for a name only, reached by IP; for an IP only, reached by name.
          for (const url of [`${nameOnly.origin}/ok${QUERY}`, `${ipOnly.origin.replace('127.0.0.1', 'localhost')}/ok${QUERY}`]) {
            const e = await failure(get(tool, url, file));
            assert.equal(e.exitCode, 35, `${url.split('?')[0]}: ${e.stderr}`);
            noUrlIn(e);
          }
          assert.deepEqual(nameOnly.seen, [], 'no request went over a connection to the wrong host');
          assert.deepEqual(ipOnly.seen, []);
        });
        // The system's CA store does not hold the test CA.
        await trusting(undefined, async () => {
          const e = await failure(get(tool, `${both.origin}/ok${QUERY}`, file));
          assert.equal(e.exitCode, 35, e.stderr);
          assert.match(e.stderr, /TLS/);
          noUrlIn(e);
          const p = await failure(put(tool, `${both.origin}/put${QUERY}`, path.join(dir, 'upload.bin')));
          assert.equal(p.exitCode, 35, p.stderr);
        });
        noProcessShowedIt(both);
      });
    }
  }
});

/** A bin dir with every command of this machine's PATH except the HTTP clients of the chain. */
async function binWithoutHttpClients(root: string): Promise<string> {
  const bin = path.join(root, 'bin-without-http');
  await fs.mkdir(bin, { recursive: true });
  const banned = /^(curl|wget|python3(\.\d+)?|perl(5[.\d]*)?|openssl)$/;
  for (const d of (process.env.PATH ?? '').split(':').concat('/usr/sbin', '/sbin')) {
    if (!d.startsWith('/') || d.includes('pyenv')) continue;
    for (const name of await fs.readdir(d).catch(() => [] as string[])) {
      if (banned.test(name)) continue;
      await fs.symlink(path.join(d, name), path.join(bin, name)).catch(() => undefined); // the first on PATH wins
    }
  }
  return bin;
}

describe('a remote with none of curl, wget, python3, perl: refused before anything changes (local:)', () => {
  let s3: TestS3;
  let env: DeployEnv;
  let bin: string;
  before(async () => {
    s3 = await startS3();
    env = await makeDeployEnv();
    bin = await binWithoutHttpClients(env.root);
  });
  after(async () => {
    await env?.stop();
    await s3?.stop();
  });

  it('deploy --upload s3 and backups push: one line naming what to install, exit 2, the volume unchanged', async () => {
    const target = `local:${path.join(env.root, 'target')}`;
    const vol = ['--target', target, '--volume', '/data'];
    const made = await runCli(['backup', ...vol]);
    assert.equal(made.code, 0, made.stderr + made.stdout);
    const volumeBefore = await digestTree(env.volumeOnDisk);
    const cliEnv = { ...s3.env, PATH: bin };
    assert.equal((await execa('sh', ['-c', 'command -v perl curl wget python3 openssl || :'], { env: { PATH: bin } })).stdout, '', 'the PATH hides the chain');

    const deploy = await runCli(deployArgs(env, target, '/data', ['--upload', 's3', '--s3-bucket', s3.bucket, '--s3-endpoint', s3.endpoint]), { env: cliEnv });
    assert.equal(deploy.code, 2, deploy.stderr + deploy.stdout);
    assert.match(deploy.json?.error ?? deploy.stderr, /has no HTTP client for --upload s3 over http: none of curl, a GNU wget, python3 or perl; install curl/);
    const push = await runCli(['backups', 'push', 'latest', ...vol, '--to', `s3://${s3.bucket}/x`, '--s3-endpoint', s3.endpoint], { env: cliEnv });
    assert.equal(push.code, 2, push.stderr + push.stdout);
    assert.equal(push.stderr.trim().split('\n').length, 1, push.stderr);
    assert.match(push.stderr, /^chroma-ferry: local:\S+ has no HTTP client for backups push over http: none of curl, a GNU wget, python3 or perl; install curl/);
    assert.equal(await digestTree(env.volumeOnDisk), volumeBefore, 'nothing changed on the volume');
    assert.deepEqual(await s3.listKeys(), [], 'nothing went to the bucket');
    assertNoSecrets(s3, deploy, push);
  });
});
