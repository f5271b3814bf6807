/**
 * The runbook runner (lib/engine/runner.ts) with plain in-memory steps: order and notes, needs,
 * background steps (really alongside, joined before the steps that wait for them, their failure
 * at the next boundary), `--step` prompts, status callbacks, step selection, and the
 * compensation stack unwound exactly once on failure.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CompensationStack } from '../../lib/engine/compensation.ts';
import { UserError } from '../../lib/common/errors.ts';
import { initialReports, runSteps, selectSteps, skipped, StepAborted, type RunStepsOptions, type StepDef, type StepStatus } from '../../lib/engine/runner.ts';
import type { StepAnswer, StepPrompter } from '../../lib/engine/step-prompt.ts';

interface Ctx {
  log: string[];
}

function step(name: string, run: StepDef<Ctx>['run'] = async (c) => { c.log.push(name); }, extra: Partial<StepDef<Ctx>> = {}): StepDef<Ctx> {
  return { name, title: `${name} title`, run, ...extra };
}

function options(steps: StepDef<Ctx>[], o: Partial<RunStepsOptions> = {}): RunStepsOptions & { statuses: string[] } {
  const statuses: string[] = [];
  return {
    output: 'json',
    signal: new AbortController().signal,
    stack: new CompensationStack(),
    reports: initialReports(steps),
    onStatus: async (s: string, st: StepStatus) => { statuses.push(`${s}:${st}`); },
    statuses,
    ...o,
  };
}

/** A promise with its resolve function, to open a gate at a known point. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((r) => { open = r; });
  return { opened, open };
}

function prompter(answers: Record<string, StepAnswer>): StepPrompter & { asked: string[] } {
  const asked: string[] = [];
  return { asked, async ask(name) { asked.push(name); return answers[name] ?? 'continue'; }, close() {} };
}

describe('runSteps', () => {
  it('runs the steps in order; a step says whether it was skipped (never read from its note); statuses are told', async () => {
    const steps = [step('a'), step('b', async (c) => { c.log.push('b'); return skipped('nothing to do'); }), step('c', async () => 'skipped nothing, 3 files')];
    const ctx: Ctx = { log: [] };
    const o = options(steps);
    const out = await runSteps(steps, ctx, o);
    assert.equal(out.ok, true);
    assert.deepEqual(ctx.log, ['a', 'b']);
    assert.deepEqual(o.reports.map((r) => [r.name, r.status, r.note]), [['a', 'done', undefined], ['b', 'skipped', 'skipped: nothing to do'], ['c', 'done', 'skipped nothing, 3 files']]);
    assert.deepEqual(o.statuses, ['a:running', 'a:done', 'b:running', 'b:skipped', 'c:running', 'c:done']);
  });

  it('a failure unwinds the stack once, newest first, and the steps after it do not run', async () => {
    const steps = [
      step('lock', async (c) => { o.stack.push('lock', async () => { c.log.push('undo lock'); }); }),
      step('swap', async (c) => { o.stack.push('swap', async () => { c.log.push('undo swap'); }); }),
      step('verify', async () => { throw new Error('counts differ'); }),
      step('cleanup'),
    ];
    const ctx: Ctx = { log: [] };
    const o = options(steps);
    const out = await runSteps(steps, ctx, o);
    assert.equal(out.ok, false);
    assert.equal((out.error as Error).message, 'counts differ');
    assert.deepEqual(ctx.log, ['undo swap', 'undo lock']);
    assert.deepEqual(out.rollback.map((u) => u.name), ['swap', 'lock']);
    assert.deepEqual(o.reports.map((r) => r.status), ['done', 'done', 'failed', 'not run']);
    assert.deepEqual(await o.stack.unwind(), [], 'unwound once');
  });

  it('needs: refused with the step to run first, unless done in this run or an earlier one', async () => {
    const steps = [step('package'), step('upload', undefined, { needs: ['package'] })];
    const o = options(steps, { selected: selectSteps(steps.map((s) => s.name), { only: 'upload' }) });
    const out = await runSteps(steps, { log: [] }, o);
    assert.ok(out.error instanceof UserError);
    assert.equal(out.error.message, 'upload needs the result of package, which has not run in this run or the recorded one; run it first (--from package)');
    const o2 = options(steps, { selected: new Set(['upload']) });
    o2.reports[0]!.status = 'earlier run';
    assert.equal((await runSteps(steps, { log: [] }, o2)).ok, true);
    const o3 = options(steps, { prompter: prompter({ package: 'skip' }) });
    const out3 = await runSteps(steps, { log: [] }, o3);
    assert.match((out3.error as Error).message, /which was skipped/);
  });

  it('a background step runs alongside the next steps and is joined before the step that waits for it', async () => {
    const g = gate();
    const ctx: Ctx = { log: [] };
    const steps = [
      step('backup', async (c) => {
        c.log.push('backup started');
        // Only finishes once `package` ran: if the runner ran it inline, the run would stop here.
        await Promise.race([g.opened, new Promise((_r, rej) => setTimeout(() => rej(new Error('backup ran inline')), 5000).unref())]);
        c.log.push('backup done');
        return 'backup-1.tar.gz';
      }, { background: true }),
      step('package', async (c) => { c.log.push('package'); g.open(); }),
      step('swap', async (c) => { c.log.push(`swap sees backup ${o.reports[0]!.status}`); }, { waitFor: ['backup'] }),
    ];
    const o = options(steps);
    const out = await runSteps(steps, ctx, o);
    assert.equal(out.ok, true, String(out.error));
    assert.deepEqual(ctx.log, ['backup started', 'package', 'backup done', 'swap sees backup done']);
    assert.equal(o.reports[0]!.note, 'backup-1.tar.gz');
  });

  it('a background step\'s failure surfaces at the next step boundary and unwinds once', async () => {
    const packaging = gate();
    const failed = gate();
    const ctx: Ctx = { log: [] };
    const steps = [
      step('lock', async (c) => { o.stack.push('lock', async () => { c.log.push('undo lock'); }); }),
      step('backup', async () => { await packaging.opened; failed.open(); throw new Error('tar failed'); }, { background: true }),
      step('package', async (c) => {
        packaging.open(); // the backup fails while this step runs
        await failed.opened;
        await new Promise((r) => setImmediate(r)); // the runner has settled the background outcome
        c.log.push('package');
      }),
      step('upload'),
      step('swap', undefined, { waitFor: ['backup'] }),
    ];
    const o = options(steps);
    const out = await runSteps(steps, ctx, o);
    assert.equal(out.ok, false);
    assert.equal((out.error as Error).message, 'tar failed');
    assert.deepEqual(ctx.log, ['package', 'undo lock'], 'upload never started');
    assert.deepEqual(o.reports.map((r) => r.status), ['done', 'failed', 'done', 'not run', 'not run']);
  });

  it('with --step prompts a background step runs inline; skip and abort are honoured', async () => {
    const ctx: Ctx = { log: [] };
    const steps = [step('lock', async (c) => { c.log.push('lock'); o.stack.push('lock', async () => { c.log.push('undo lock'); }); }), step('backup', undefined, { background: true }), step('package'), step('upload')];
    const p = prompter({ package: 'skip', upload: 'abort' });
    const o = options(steps, { prompter: p });
    const out = await runSteps(steps, ctx, o);
    assert.ok(out.error instanceof StepAborted);
    assert.equal(out.error.step, 'upload');
    assert.deepEqual(p.asked, ['lock', 'backup', 'package', 'upload']);
    assert.deepEqual(ctx.log, ['lock', 'backup', 'undo lock']);
    assert.deepEqual(o.reports.map((r) => [r.status, r.note]), [['done', undefined], ['done', undefined], ['skipped', 'skipped at the prompt'], ['not run', undefined]]);
  });

  it('an aborted signal stops before the next step and unwinds', async () => {
    const ac = new AbortController();
    const ctx: Ctx = { log: [] };
    const steps = [step('lock', async (c) => { o.stack.push('lock', async () => { c.log.push('undo lock'); }); ac.abort('SIGINT'); }), step('upload')];
    const o = options(steps, { signal: ac.signal });
    const out = await runSteps(steps, ctx, o);
    assert.equal(out.ok, false);
    assert.deepEqual(ctx.log, ['undo lock']);
    assert.equal(o.reports[1]!.status, 'not run');
  });

  it('ahead: a step\'s read-only work starts before its start is recorded and runs alongside that write', async () => {
    const written = gate();
    const steps = [
      step('restart'),
      step('verify', async (c) => { c.log.push('verify run'); }, {
        ahead(c, signal) { c.log.push(`verify ahead (aborted: ${signal.aborted})`); },
      }),
    ];
    const ctx: Ctx = { log: [] };
    const o = options(steps, {
      onStatus: async (s, st) => {
        ctx.log.push(`${s}:${st} written`);
        if (s === 'verify' && st === 'running') {
          // The write of verify's start is under way: its ahead work has started already.
          assert.ok(ctx.log.includes('verify ahead (aborted: false)'));
          written.open();
        }
      },
    });
    const out = await runSteps(steps, ctx, o);
    await written.opened;
    assert.equal(out.ok, true);
    assert.deepEqual(ctx.log, ['restart:running written', 'restart', 'restart:done written', 'verify ahead (aborted: false)', 'verify:running written', 'verify run', 'verify:done written']);
  });

  it('recordStartAlongside: the run starts while its start record is being written; the step ends once both have', async () => {
    const runStarted = gate();
    const steps = [step('restart', async (c) => { c.log.push('restart run'); runStarted.open(); }, { recordStartAlongside: true }), step('verify')];
    const ctx: Ctx = { log: [] };
    const o = options(steps, {
      onStatus: async (s, st) => {
        if (s === 'restart' && st === 'running') {
          // The write is under way until the run has started (at most 5 s: else the run waited for it).
          const started = await Promise.race([runStarted.opened.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 5000))]);
          ctx.log.push(`restart:running written (run started first: ${started})`);
          return;
        }
        ctx.log.push(`${s}:${st} written`);
      },
    });
    const out = await runSteps(steps, ctx, o);
    assert.equal(out.ok, true);
    assert.deepEqual(ctx.log, ['restart run', 'restart:running written (run started first: true)', 'restart:done written', 'verify:running written', 'verify', 'verify:done written']);
  });

  it('recordStartAlongside: a start record that fails fails the step once its run has ended, and unwinds', async () => {
    const steps = [step('restart', async (c) => { c.log.push('restart run'); o.stack.push('restart', async () => { c.log.push('undo restart'); }); }, { recordStartAlongside: true }), step('verify')];
    const ctx: Ctx = { log: [] };
    const o = options(steps, {
      onStatus: async (s, st) => { if (s === 'restart' && st === 'running') throw new Error('the state write failed'); },
    });
    const out = await runSteps(steps, ctx, o);
    assert.equal(out.ok, false);
    assert.deepEqual(ctx.log, ['restart run', 'undo restart']);
    assert.deepEqual(o.reports.map((r) => r.status), ['failed', 'not run']);
  });

  it('ahead: when the step\'s start cannot be recorded, its ahead work is aborted and its run never called', async () => {
    let aheadSignal: AbortSignal | undefined;
    const steps = [step('verify', async (c) => { c.log.push('verify run'); }, { ahead(_c, signal) { aheadSignal = signal; } })];
    const ctx: Ctx = { log: [] };
    const o = options(steps, {
      onStatus: async (_s, st) => { if (st === 'running') throw new Error('the state write failed'); },
    });
    const out = await runSteps(steps, ctx, o);
    assert.equal(out.ok, false);
    assert.deepEqual(ctx.log, []);
    assert.equal(o.reports[0]!.status, 'failed');
    assert.equal(aheadSignal?.aborted, true);
  });
});

describe('selectSteps', () => {
  const names = ['preflight', 'manifest', 'backup', 'swap', 'verify'];
  it('all by default; --from a step and the ones after it; --only one; the always steps in every selection', () => {
    assert.deepEqual([...selectSteps(names, {})], names);
    assert.deepEqual([...selectSteps(names, { from: 'swap' }, ['preflight'])], ['preflight', 'swap', 'verify']);
    assert.deepEqual([...selectSteps(names, { only: 'backup' }, ['preflight'])], ['preflight', 'backup']);
  });
  it('refuses an unknown step (naming the steps) and --from with --only', () => {
    assert.throws(() => selectSteps(names, { from: 'nope' }), (e: unknown) => e instanceof UserError && e.message === '--from nope: no such step; steps are preflight, manifest, backup, swap, verify');
    assert.throws(() => selectSteps(names, { from: 'swap', only: 'verify' }), /do not go together/);
  });
});
