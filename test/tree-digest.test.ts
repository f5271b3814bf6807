import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { digestTree, listFiles } from '../testkit/tree-digest.ts';

function makeTree(root: string): void {
  fs.mkdirSync(path.join(root, 'sub dir', 'deep'), { recursive: true });
  fs.writeFileSync(path.join(root, 'a.bin'), Buffer.from([0, 1, 2, 255]));
  fs.writeFileSync(path.join(root, 'sub dir', 'B.txt'), 'hello');
  fs.writeFileSync(path.join(root, 'sub dir', 'deep', "it's.txt"), 'x'.repeat(100_000));
  fs.symlinkSync('a.bin', path.join(root, 'link'));
}

test('digestTree: equal for identical trees, different for any change', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-digest-'));
  try {
    const a = path.join(tmp, 'a');
    const b = path.join(tmp, 'b');
    makeTree(a);
    makeTree(b);
    const base = await digestTree(a);
    assert.match(base, /^[0-9a-f]{64}$/);
    assert.equal(await digestTree(b), base);
    assert.deepEqual(await listFiles(a), ['./a.bin', './sub dir/B.txt', "./sub dir/deep/it's.txt"]);

    const changes: [string, () => void, () => void][] = [
      ['content', () => fs.writeFileSync(path.join(b, 'a.bin'), Buffer.from([0, 1, 2, 254])), () => fs.writeFileSync(path.join(b, 'a.bin'), Buffer.from([0, 1, 2, 255]))],
      ['mode', () => fs.chmodSync(path.join(b, 'sub dir', 'B.txt'), 0o600), () => fs.chmodSync(path.join(b, 'sub dir', 'B.txt'), fs.statSync(path.join(a, 'sub dir', 'B.txt')).mode & 0o7777)],
      ['symlink target', () => { fs.unlinkSync(path.join(b, 'link')); fs.symlinkSync('sub dir', path.join(b, 'link')); }, () => { fs.unlinkSync(path.join(b, 'link')); fs.symlinkSync('a.bin', path.join(b, 'link')); }],
      ['empty dir', () => fs.mkdirSync(path.join(b, 'empty')), () => fs.rmdirSync(path.join(b, 'empty'))],
      ['rename', () => fs.renameSync(path.join(b, 'a.bin'), path.join(b, 'a2.bin')), () => fs.renameSync(path.join(b, 'a2.bin'), path.join(b, 'a.bin'))],
    ];
    for (const [what, change, undo] of changes) {
      change();
      assert.notEqual(await digestTree(b), base, what);
      undo();
      assert.equal(await digestTree(b), base, `${what} undone`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
