/**
 * Which HTTP client the remote uses (lib/remote/http-transfer.ts): the real probe script run
 * under a LocalHost whose PATH holds exactly the tools of each case (links to this machine's
 * real binaries), so the pick is deterministic: curl, then a GNU wget, then python3, then perl
 * (plain http) or perl with openssl (https); none of them is a one-line refusal naming what to
 * install. The transfers themselves are exercised in test/http-transfer.test.ts.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UserError } from '../../lib/common/errors.ts';
import { LocalHost } from '../../lib/hosts/local.ts';
import { fetchUrlScript, HTTP_TOOLS, putFileToUrlScript, schemeOf, urlStdin } from '../../lib/remote/http-transfer.ts';
import { renderShCommand } from '../../lib/remote/shell.ts';
import { detectHttpTool } from '../../lib/transfer/s3.ts';
import { which, withEnv } from './local-volume.ts';

/** The real binary behind a command (pyenv shims and symlinks resolved), or undefined. */
function realBinary(tool: string): string | undefined {
  try {
    if (tool === 'python3') return execFileSync('python3', ['-c', 'import os, sys; print(os.path.realpath(sys.executable))'], { encoding: 'utf8' }).trim();
    return which(tool) || undefined;
  } catch {
    return undefined;
  }
}

describe('the remote HTTP client: chosen once, by what the remote has', () => {
  let dir: string;
  const host = new LocalHost('/');
  const binaries = new Map<string, string>();
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-http-tools-'));
    for (const t of ['sh', 'grep', 'curl', 'wget', 'python3', 'perl', 'openssl']) {
      const b = realBinary(t);
      if (b) binaries.set(t, b);
    }
  });
  after(async () => { await fs.rm(dir, { recursive: true, force: true }); });

  /** A bin dir holding only `tools` (and sh): the PATH of one case. */
  async function binWith(tools: string[]): Promise<string | undefined> {
    const bin = path.join(dir, ['sh', ...tools].join('+'));
    await fs.mkdir(bin, { recursive: true });
    for (const t of ['sh', ...tools]) {
      const b = binaries.get(t);
      if (!b) return undefined;
      await fs.symlink(b, path.join(bin, t)).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'EEXIST') throw e; });
    }
    return bin;
  }

  async function pick(tools: string[], direction: 'get' | 'put', endpoint: string | undefined): Promise<string | UserError> {
    const bin = await binWith(tools);
    if (!bin) return new UserError(`skip: ${tools.join(', ')} not all on this machine`);
    return withEnv({ PATH: bin }, async () => {
      try {
        return await detectHttpTool(host, direction, endpoint, direction === 'get' ? '--upload s3' : 'backups push');
      } catch (e) {
        if (e instanceof UserError) return e;
        throw e;
      }
    });
  }

  const cases: { tools: string[]; http: string; https: string }[] = [
    { tools: ['perl'], http: 'perl', https: 'none' },
    { tools: ['perl', 'openssl'], http: 'perl', https: 'perl-openssl' },
    { tools: ['perl', 'openssl', 'python3'], http: 'python3', https: 'python3' },
    { tools: ['perl', 'openssl', 'python3', 'grep', 'wget'], http: 'wget', https: 'wget' },
    { tools: ['perl', 'openssl', 'python3', 'grep', 'wget', 'curl'], http: 'curl', https: 'curl' },
    { tools: ['openssl'], http: 'none', https: 'none' },
  ];
  for (const c of cases) {
    it(`with ${c.tools.join(', ')}: ${c.http} for http, ${c.https} for https (GET and PUT)`, async (t) => {
      for (const direction of ['get', 'put'] as const) {
        for (const [endpoint, want] of [['http://127.0.0.1:9', c.http], ['https://r2.example', c.https], [undefined, c.https]] as const) {
          const got = await pick(c.tools, direction, endpoint);
          if (got instanceof UserError && got.message.startsWith('skip: ')) {
            process.stderr.write(`\n!!! WARNING: ${got.message.slice(6)}: this case of the HTTP client choice is SKIPPED\n\n`);
            t.skip(got.message);
            return;
          }
          if (want !== 'none') {
            assert.equal(got, want, `${direction} ${endpoint ?? '(AWS)'}`);
            continue;
          }
          assert.ok(got instanceof UserError, `${direction} ${endpoint ?? '(AWS)'}: want a refusal, got ${String(got)}`);
          assert.equal(got.exitCode, 2);
          assert.equal(got.message.split('\n').length, 1);
          assert.match(got.message, new RegExp(`^local:/ has no HTTP client for ${direction === 'get' ? '--upload s3' : 'backups push'} over ${schemeOf(endpoint)}: none of curl, a GNU wget, python3`));
          // perl is there but openssl is not: that is what to install; otherwise curl.
          assert.match(got.message, c.tools.includes('perl') ? /install openssl \(perl is there to drive it\) or curl on the remote host$/ : /install curl/);
        }
      }
    });
  }

  it('the rendered transfer commands carry no URL for any tool; the URL is the tool\'s stdin', () => {
    const url = 'https://b.example/k?X-Amz-Signature=deadbeef';
    for (const tool of HTTP_TOOLS) {
      for (const script of [fetchUrlScript('/v/.chunk-000000.partial', tool), putFileToUrlScript('/v/x.tar.gz', tool)]) {
        const cmd = renderShCommand(script);
        assert.ok(!cmd.includes('b.example') && !cmd.includes('deadbeef'), cmd);
        assert.deepEqual(script.args.slice(1), [tool]);
      }
      assert.ok(urlStdin(tool, url).includes(url));
      assert.throws(() => urlStdin(tool, `${url}\nsecond`), /line break/);
    }
  });
});
