/**
 * chainScripts (lib/remote/chain.ts): several remote scripts as one command, run here by real sh
 * (a LocalHost on a temp volume, and the rendered command line as `sh -e plan.sh` runs it).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RemoteCommandError, UserError } from '../../lib/common/errors.ts';
import { chainScripts, ChainPartError, runChain } from '../../lib/remote/chain.ts';
import { REFUSALS, refusalOf, refuseSh } from '../../lib/remote/refusals.ts';
import { withSpaceGuard } from '../../lib/remote/space-guard.ts';
import { remoteScript, renderShCommand } from '../../lib/remote/shell.ts';
import { rejection, tempVolume, type TempVolume } from './local-volume.ts';

/** Each argument printed NUL-terminated, as the part received it. */
const printArgs = (title: string, args: string[]) => remoteScript(title, `printf '%s\\0' "$0" "$#" "$@"`, args);

describe('chainScripts: several remote scripts as one command', () => {
  let v: TempVolume;
  before(async () => { v = await tempVolume(); });
  after(async () => { await v.dispose(); });

  it('runs every part in order, each with its own arguments; stdout of all parts in that order', async () => {
    const chain = chainScripts('three parts', [
      remoteScript('one', 'echo "one $1"', ['a']),
      remoteScript('two', 'echo "two $#"; echo "two $2"', ['b', 'c']),
      remoteScript('three', 'echo three'),
    ]);
    assert.equal(chain.title, 'three parts');
    assert.deepEqual(chain.parts.map((p) => p.title), ['one', 'two', 'three']);
    const r = await runChain(v.host, chain);
    assert.equal(r.stdout, 'one a\ntwo 2\ntwo c\nthree\n');
  });

  it('arguments with spaces, quotes, $(...), backticks, newlines, globs and empty ones stay data, past $9 too', async () => {
    const witness = path.join(v.root, 'pwned');
    const nasty = [
      'a b', "it's", '"quoted"', `$(touch ${witness})`, `\`touch ${witness}\``, 'line\nbreak', '*', '', '-e', '$1', '${10}', '; touch x',
    ];
    // Two parts: the second's arguments sit at $15 and above of the outer script.
    const chain = chainScripts('nasty', [printArgs('first', nasty), printArgs('second', [...nasty].reverse())]);
    const out = (await runChain(v.host, chain)).stdout.split('\0');
    assert.equal(out.pop(), '');
    const expected = (args: string[]) => ['ferry', String(args.length), ...args];
    assert.deepEqual(out, [...expected(nasty), ...expected([...nasty].reverse())]);
    await assert.rejects(fs.access(witness), 'no argument ran as code');
    assert.ok(!chain.code.includes('touch'), 'no part code or argument is in the chain\'s own code');
  });

  it('stops at the first part that exits non-zero and exits with its status; the failure is that part\'s own', async () => {
    const after3 = path.join(v.root, 'third-ran');
    const chain = chainScripts('stops', [
      remoteScript('first', 'echo first; echo "first err" >&2'),
      remoteScript('second', 'echo second; echo "second failed: $1" >&2; exit 7', ['why']),
      remoteScript('third', 'touch "$1"', [after3]),
    ]);
    // What the host sees: the chain's title and the part's status, the part named on stderr.
    const raw = await rejection(v.host.run(chain));
    assert.ok(raw instanceof RemoteCommandError);
    assert.equal(raw.exitCode, 7);
    assert.match(raw.stderr, /ferry_chain_part=2\n$/);
    // Through runChain: as if the second part had run alone.
    const e = await rejection(runChain(v.host, chain));
    assert.ok(e instanceof ChainPartError);
    assert.equal(e.part, chain.parts[1]);
    assert.equal(e.exitCode, 7);
    assert.equal(e.stderr, 'first err\nsecond failed: why\n');
    assert.equal(e.message, 'second failed (exit 7): first err | second failed: why');
    await assert.rejects(fs.access(after3), 'the part after the failure did not run');
  });

  it('a part\'s exit ends only that part; a status of 1 and a signal\'s status pass through', async () => {
    const ok = chainScripts('exit 0 early', [remoteScript('a', 'exit 0; echo never'), remoteScript('b', 'echo b')]);
    assert.equal((await runChain(v.host, ok)).stdout, 'b\n');
    for (const [code, status] of [['false', 1], ['kill -TERM $$', 143]] as const) {
      const e = await rejection(runChain(v.host, chainScripts('fails', [remoteScript('a', ':'), remoteScript('b', code)])));
      assert.ok(e instanceof ChainPartError, String(e));
      assert.equal(e.exitCode, status, code);
      assert.equal(e.part.title, 'b');
    }
  });

  it('a refusal passes through: its status and details; its one line for the parts that ask for it', async () => {
    const refusing = remoteScript('take it', `${refuseSh('lock-held', { holder: '"$1"' })}`, ['{"runId":"other"}']);
    const chain = chainScripts('refuses', [remoteScript('before', 'echo before'), refusing, remoteScript('never', 'echo never')]);
    const e = await rejection(runChain(v.host, chain));
    assert.ok(e instanceof ChainPartError);
    assert.equal(e.exitCode, REFUSALS['lock-held'].code);
    assert.equal(refusalOf(e)?.details.holder, '{"runId":"other"}');
    assert.match(e.message, /^take it: another run holds the deploy lock/);
    const ue = await rejection(runChain(v.host, chain, { refusing: [refusing], volume: '/data' }));
    assert.ok(ue instanceof UserError);
    assert.equal(ue.exitCode, REFUSALS['lock-held'].cliExit);
    assert.match(ue.message, /^another run holds the deploy lock on \/data/);
    // Another part's refusal is not turned into a UserError.
    const other = await rejection(runChain(v.host, chain, { refusing: [chain.parts[0]!], volume: '/data' }));
    assert.ok(other instanceof ChainPartError && !(other instanceof UserError));
  });

  it('a space guard inside a chain refuses before its part writes, and the parts after it do not run', async () => {
    const file = path.join(v.layout.volume, 'written');
    const chain = chainScripts('guarded', [
      remoteScript('first', 'echo first'),
      withSpaceGuard(remoteScript('write', 'echo data > "$1"', [file]), v.layout.volume, 2 ** 60),
      remoteScript('after', 'echo after'),
    ]);
    const e = await rejection(runChain(v.host, chain));
    assert.ok(e instanceof ChainPartError);
    assert.equal(refusalOf(e)?.reason, 'volume-full');
    assert.match(e.message, /^write: volume full: \d+ MiB free, needed 1099511627776 MiB/);
    await assert.rejects(fs.access(file));
  });

  it('the rendered command line (what --plan prints) runs the same parts, and sh -e stops at a failing chain', async () => {
    const marker = path.join(v.root, 'after-the-chain');
    const ok = chainScripts('ok', [printArgs('one', ["it's a $(test)"]), remoteScript('two', 'echo two')]);
    const r = spawnSync('sh', ['-c', renderShCommand(ok)], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "ferry\x001\x00it's a $(test)\x00two\n");
    const plan = path.join(v.root, 'plan.sh');
    const failing = chainScripts('fails', [remoteScript('a', ':'), remoteScript('b', 'exit 5')]);
    await fs.writeFile(plan, [renderShCommand(failing), `touch '${marker}'`, ''].join('\n'));
    const s = spawnSync('sh', ['-e', plan], { encoding: 'utf8' });
    assert.equal(s.status, 5);
    await assert.rejects(fs.access(marker));
  });

  it('refuses an empty chain', () => {
    assert.throws(() => chainScripts('nothing', []), /has no scripts/);
  });
});
