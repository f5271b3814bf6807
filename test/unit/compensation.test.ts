/**
 * The compensation stack (lib/engine/compensation.ts): undos run newest first, once; a failing undo
 * does not stop the others; drop and clear forget undos.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CompensationStack } from '../../lib/engine/compensation.ts';

describe('CompensationStack', () => {
  it('unwinds newest first, reports each undo, and keeps going past a failing one', async () => {
    const s = new CompensationStack();
    const ran: string[] = [];
    s.push('lock', async () => { ran.push('lock'); });
    s.push('upload', async () => { ran.push('upload'); throw new Error('remote gone'); });
    s.push('swap', async () => { ran.push('swap'); });
    assert.deepEqual(s.names(), ['lock', 'upload', 'swap']);
    const events: string[] = [];
    const out = await s.unwind((name, phase, err) => events.push(`${name}:${phase}${err ? `:${err}` : ''}`));
    assert.deepEqual(ran, ['swap', 'upload', 'lock']);
    assert.deepEqual(out.map((u) => [u.name, u.ok, u.error]), [['swap', true, undefined], ['upload', false, 'remote gone'], ['lock', true, undefined]]);
    assert.deepEqual(events, ['swap:start', 'swap:ok', 'upload:start', 'upload:fail:remote gone', 'lock:start', 'lock:ok']);
    assert.ok(out.every((u) => u.ms >= 0));
    assert.equal(s.size, 0);
  });

  it('unwinds once: a second unwind (a second Ctrl-C) does nothing, even with undos pushed since', async () => {
    const s = new CompensationStack();
    let n = 0;
    s.push('a', async () => { n++; });
    const [first, second] = await Promise.all([s.unwind(), s.unwind()]);
    assert.equal(first.length, 1);
    assert.deepEqual(second, []);
    s.push('b', async () => { n++; });
    assert.deepEqual(await s.unwind(), []);
    assert.equal(n, 1);
  });

  it('drop forgets one undo by name, clear all of them', async () => {
    const s = new CompensationStack();
    const ran: string[] = [];
    for (const name of ['lock', 'backup', 'swap']) s.push(name, async () => { ran.push(name); });
    s.drop('backup');
    s.drop('no-such');
    assert.deepEqual(s.names(), ['lock', 'swap']);
    await s.unwind();
    assert.deepEqual(ran, ['swap', 'lock']);
    const t = new CompensationStack();
    t.push('x', async () => { ran.push('x'); });
    t.clear();
    assert.equal(t.size, 0);
    assert.deepEqual(await t.unwind(), []);
    assert.ok(!ran.includes('x'));
  });

  it('a non-Error thrown by an undo is reported as text', async () => {
    const s = new CompensationStack();
    s.push('odd', async () => { throw 'plain string'; });
    const [u] = await s.unwind();
    assert.equal(u?.error, 'plain string');
  });
});
