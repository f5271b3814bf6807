/**
 * Bad input: one clear line on stderr, exit 2, nothing changed on the target, source untouched.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { deployArgs, digestTree, makeDeployEnv, runCli, type DeployEnv } from './helpers/deploy-env.ts';

describe('deploy refuses bad input', () => {
  let env: DeployEnv;
  let target: string;
  let volumeDigest: string;
  let sourceDigest: string;
  const canary = path.join(os.tmpdir(), `ferry-canary-${process.pid}`);
  before(async () => {
    env = await makeDeployEnv();
    target = `local:${path.join(env.root, 'target')}`;
    volumeDigest = await digestTree(env.volumeOnDisk);
    sourceDigest = await digestTree(env.source);
  });
  after(async () => env?.stop());

  const withFlag = (flag: string, value: string | null) => {
    const args = deployArgs(env, target, '/data');
    const i = args.indexOf(flag);
    if (i >= 0) {
      if (value === null) args.splice(i, 2);
      else args[i + 1] = value;
    } else if (value !== null) args.push(flag, value);
    return args;
  };

  const cases: [string, () => string[], RegExp][] = [
    ['missing source dir', () => withFlag('--source', path.join(env.root, 'nope')), /--source .*no such directory/],
    ['source without chroma.sqlite3', () => withFlag('--source', env.root), /no chroma\.sqlite3 inside/],
    ['no --source at all', () => withFlag('--source', null), /missing --source/],
    ['unknown target scheme', () => withFlag('--target', 'ftp://host/data'), /unknown target scheme "ftp:"/],
    ['relative local: path', () => withFlag('--target', 'local:relative/dir'), /local: needs an absolute path/],
    ['relative volume path', () => withFlag('--volume', 'data'), /--volume data: must be an absolute path/],
    ['chunk size under 1 MiB', () => withFlag('--chunk-size', '512KiB'), /--chunk-size 512KiB: must be at least 1MiB/],
    ['chunk size that is not a size', () => withFlag('--chunk-size', 'lots'), /--chunk-size lots: not a size/],
    ['volume that does not exist on the target', () => withFlag('--volume', '/no/such/volume'), /volume .* does not exist on local:/],
    ['ssh user with shell metacharacters', () => withFlag('--target', `ssh://ro$(touch ${canary})ot@127.0.0.1:22`), /is not a valid login name/],
    ['ssh host with shell metacharacters', () => withFlag('--target', 'ssh://root@127.0.0.1;touch${IFS}x'), /is not a valid host name/],
    ['ssh host that is an option', () => withFlag('--target', 'ssh://root@-oProxyCommand=x'), /is not a valid host name/],
    ['db dir with a slash', () => withFlag('--db-dir', '../escape'), /--db-dir .*plain directory name/],
    ['health url that is not a URL', () => withFlag('--health-url', 'localhost:8000'), /--health-url .*must be http.*did you mean http:\/\/localhost:8000\?/],
    ['health url with credentials (the password never echoed)', () => withFlag('--health-url', 'http://admin:hunter2-secret@127.0.0.1:8000'),
      /^chroma-ferry: --health-url http:\/\/\*\*\*@127\.0\.0\.1:8000: credentials in a URL are refused .*CHROMA_API_KEY \(sent as the x-chroma-token header\)$/],
    ['target HOST:PORT without ssh://', () => withFlag('--target', '127.0.0.1:22022'), /--target 127\.0\.0\.1:22022: did you mean ssh:\/\/USER@127\.0\.0\.1:22022\?/],
    ['ssh target with a password (never echoed)', () => withFlag('--target', 'ssh://root:hunter2-secret@127.0.0.1:22'), /--target ssh:\/\/root:\*\*\*@127\.0\.0\.1:22: a password in the target is refused/],
    ['unknown flag', () => [...deployArgs(env, target, '/data'), '--frobnicate'], /unknown option '--frobnicate'/],
    ['no --yes without a terminal', () => withFlag('--yes', null).filter((a) => a !== '--yes'), /refusing without a terminal to confirm; pass --yes/],
  ];

  for (const [name, args, message] of cases) {
    it(name, async () => {
      const r = await runCli(args());
      assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
      assert.match(lines[0]!, message);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      assert.ok(!(r.stdout + r.stderr).includes('hunter2-secret'), 'a password was printed');
    });
  }

  it('changed nothing on the target and nothing in the source', async () => {
    assert.equal(await digestTree(env.volumeOnDisk), volumeDigest);
    assert.equal(await digestTree(env.source), sourceDigest);
    await assert.rejects(fs.access(canary));
  });
});
