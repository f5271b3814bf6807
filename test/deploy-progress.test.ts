/**
 * Upload progress for a person, without a terminal (CI=true, output piped): a real deploy to a
 * `local:` target of a source that makes 20+ chunks shows throughput and ETA at most once per
 * tenth of the bytes, never a line per chunk, the share only going up. Most chunks leave while
 * packing goes on: the lines show during the package step too, one display over the whole
 * transfer (the archive's size estimated until it is packed, `~`), none repeated by the upload step.
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

  it('prints throughput and ETA once per tenth of the bytes, from the package step on, increasing, 10 or 11 lines', async (t) => {
    const args = deployArgs(env, target, '/data', ['--chunk-size', '1MiB', '--upload-concurrency', '1']).filter((a) => a !== '--json');
    const r = await runCli(args);
    assert.equal(r.code, 0, r.stderr);
    const out = `${r.stdout}\n${r.stderr}`;
    const chunks = Number(/(\d+) chunks, /.exec(out)?.[1]);
    assert.ok(chunks >= 20, `expected 20+ chunks, got ${chunks}:\n${out}`);
    const all = out.split('\n');
    const isProgress = (l: string) => /\(\d+%\), [\d.]+ MB\/s, ETA /.test(l);
    const lines = all.filter(isProgress);
    // A tenth of the archive is 2+ chunks and a stretch of packed input: every tenth gets its line (the first reading, 0%, may share one).
    assert.ok(lines.length >= 10 && lines.length <= 11, `expected 10 or 11 progress lines, got ${lines.length}:\n${out}`);
    const shares = lines.map((l) => Number(/\((\d+)%\)/.exec(l)![1]));
    t.diagnostic(`progress lines at ${shares.join(', ')}%`);
    for (let i = 1; i < shares.length; i++) assert.ok(shares[i]! > shares[i - 1]!, `shares must increase: ${shares.join(', ')}`);
    assert.equal(shares.at(-1), 100, `the last line says 100%:\n${lines.join('\n')}`);
    assert.match(lines.at(-1)!, /ETA 0 s/);
    assert.ok(lines.every((l) => /\d+ (chunks|\/)/.test(l) && /(MiB|KiB|B) \/ ~?[\d.]+ MiB/.test(l)), lines.join('\n'));
    // Shown while packing: the lines before the package step's own end, the total then estimated.
    const packed = all.findIndex((l) => /package: .*: \d+ chunks, /.test(l));
    const whilePacking = all.slice(0, packed).filter(isProgress);
    assert.ok(whilePacking.length >= 5, `most lines while packing (most chunks leave then), got ${whilePacking.length}:\n${out}`);
    assert.ok(whilePacking.every((l) => / \/ ~[\d.]+ MiB \(\d\d?%\)/.test(l)), whilePacking.join('\n'));
  });
});
