/**
 * Upload progress for a person, without a terminal (CI=true, output piped): a real deploy to a
 * `local:` target of a source that makes 20+ chunks shows throughput and ETA at most once per
 * tenth of the bytes, never a line per chunk, the share only going up.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { deployArgs, makeDeployEnv, runCli, type DeployEnv } from './helpers/deploy-env.ts';

describe('deploy: upload progress in plain output', () => {
  let env: DeployEnv;
  let target: string;
  before(async () => {
    // 6,000 x 768 float32 (random, barely compressible): an archive of ~20 MiB, 1 MiB chunks.
    env = await makeDeployEnv({ volumeOnDisk: (root) => path.join(root, 'target', 'data'), source: [{ name: 'vectors', count: 6000, dim: 768, space: 'l2' }] });
    target = `local:${path.join(env.root, 'target')}`;
  });
  after(async () => env?.stop());

  it('prints throughput and ETA once per tenth of the bytes, increasing, at most 11 lines', async () => {
    const args = deployArgs(env, target, '/data', ['--chunk-size', '1MiB', '--upload-concurrency', '1']).filter((a) => a !== '--json');
    const r = await runCli(args);
    assert.equal(r.code, 0, r.stderr);
    const out = `${r.stdout}\n${r.stderr}`;
    const chunks = Number(/(\d+) chunks, /.exec(out)?.[1]);
    assert.ok(chunks >= 20, `expected 20+ chunks, got ${chunks}:\n${out}`);
    const lines = out.split('\n').filter((l) => /\(\d+%\), [\d.]+ MB\/s, ETA /.test(l));
    assert.ok(lines.length >= 1 && lines.length <= 11, `expected 1 to 11 progress lines, got ${lines.length}:\n${out}`);
    const shares = lines.map((l) => Number(/\((\d+)%\)/.exec(l)![1]));
    for (let i = 1; i < shares.length; i++) assert.ok(shares[i]! > shares[i - 1]!, `shares must increase: ${shares.join(', ')}`);
    assert.equal(shares.at(-1), 100, `the last line says 100%:\n${lines.join('\n')}`);
    assert.match(lines.at(-1)!, /ETA 0 s/);
    assert.ok(lines.every((l) => /\d+ (chunks|\/)/.test(l) && /MiB \/ [\d.]+ MiB/.test(l)), lines.join('\n'));
  });
});
