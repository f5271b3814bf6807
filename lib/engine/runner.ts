/**
 * Runs a runbook: its ordered steps as one Listr2 task list, each step's duration and note
 * recorded, and on failure, Ctrl-C or SIGTERM the run's compensation stack unwound once.
 */
import { Listr, type ListrRendererValue, type ListrTask } from 'listr2';
import { CompensationStack, type UndoOutcome } from './compensation.ts';
import { listrOptions, type OutputMode } from '../report/output.ts';
import { UserError } from '../common/errors.ts';
import { redact } from '../report/secrets.ts';
import type { StepPrompter } from './step-prompt.ts';
import type { ProgressLine } from './step.ts';

export interface StepDef<C> {
  name: string;
  title: string;
  /** Earlier steps whose results this step uses: each must be done in this run or in the state of an earlier one. */
  needs?: readonly string[];
  /**
   * Runs alongside the steps after it (a remote job that needs nothing from them): started at its
   * place, joined before the first step that lists it in `waitFor` (or at the end). A failure
   * surfaces at the next step boundary and unwinds as usual. With `--step` prompts it runs inline.
   */
  background?: boolean;
  /** Background steps that must have finished before this one starts. */
  waitFor?: readonly string[];
  /**
   * Read-only work the runner starts just before it records this step's start, so that it runs
   * alongside that state write (e.g. polling a server); `run` then awaits what it started. `signal`
   * aborts when the start cannot be recorded (the step fails and its run is never called) or the
   * run is aborted. It must change nothing: a crash before the record leaves the previous state.
   */
  ahead?(c: C, signal: AbortSignal): void;
  /**
   * The record of this step's start is written while its run goes on (the run does not wait for
   * it; the step ends once both have): for a step whose effect is safe to repeat, as a crash
   * before the record lands leaves the state before it, which the next command settles from the
   * volume. A record that fails fails the step once its run has ended.
   */
  recordStartAlongside?: boolean;
  /**
   * What the step did: its status (done or skipped) and a short note for the summary. A plain
   * string is the note of a done step: the status is never read from the note's text.
   */
  run(c: C, progress: ProgressLine): Promise<StepOutcome | string | void>;
}

/** How a step ended when it did not fail. */
export interface StepOutcome {
  status: 'done' | 'skipped';
  note?: string;
}

/** A done step, with its note. */
export function done(note?: string): StepOutcome {
  return note === undefined ? { status: 'done' } : { status: 'done', note };
}

/** A skipped step; its note reads `skipped: WHY`. */
export function skipped(why: string): StepOutcome {
  return { status: 'skipped', note: `skipped: ${why}` };
}

function outcomeOf(r: StepOutcome | string | void): StepOutcome {
  if (r === undefined) return { status: 'done' };
  return typeof r === 'string' ? done(r) : r;
}

export interface StepReport {
  name: string;
  /** `earlier run`: done by an earlier run of the runbook, its result taken from the runbook state. */
  status: 'done' | 'skipped' | 'failed' | 'not run' | 'earlier run';
  ms: number;
  note?: string;
}

export interface RunOutcome {
  ok: boolean;
  error?: unknown;
  rollback: UndoOutcome[];
}

export function initialReports(steps: { name: string }[]): StepReport[] {
  return steps.map((s) => ({ name: s.name, status: 'not run', ms: 0 }));
}

/** A step's status in the runbook state: a report status, or running (a crash leaves it so), or undone by the unwind. */
export type StepStatus = StepReport['status'] | 'running' | 'undone';

export interface RunStepsOptions {
  output: OutputMode;
  signal: AbortSignal;
  stack: CompensationStack;
  reports: StepReport[];
  prompter?: StepPrompter;
  /** Only these steps run (`--from`, `--only`); default all. */
  selected?: ReadonlySet<string>;
  /** Told every status change (the runbook state file); awaited before the step goes on. */
  onStatus?: (step: string, status: StepStatus) => Promise<void>;
}

/**
 * Which steps `--from STEP` / `--only STEP` run. `always` steps (the preflight: checks and lock)
 * run in every selection. Throws a UserError naming the valid steps for an unknown name.
 */
export function selectSteps(
  names: readonly string[],
  sel: { from?: string; only?: string },
  always: readonly string[] = [],
): Set<string> {
  if (sel.from && sel.only) throw new UserError('--from and --only do not go together: pick one');
  const pick = sel.from ?? sel.only;
  if (!pick) return new Set(names);
  const i = names.indexOf(pick);
  if (i < 0) throw new UserError(`${sel.from ? '--from' : '--only'} ${pick}: no such step; steps are ${names.join(', ')}`);
  const chosen = sel.from ? names.slice(i) : [pick];
  return new Set([...always, ...chosen]);
}

export async function runSteps<C>(steps: StepDef<C>[], ctx: C, o: RunStepsOptions): Promise<RunOutcome> {
  const statusOf = (name: string) => o.reports.find((r) => r.name === name)?.status ?? 'not run';
  const run = steps.filter((s) => !o.selected || o.selected.has(s.name));
  /** Background steps started in this run: their completion, and their outcome once settled. */
  type Outcome = { note?: string; error?: unknown };
  const background = new Map<string, { done: Promise<Outcome>; outcome?: Outcome }>();
  const failedInBackground = (): Outcome | undefined => [...background.values()].find((b) => b.outcome && 'error' in b.outcome)?.outcome;

  const execute = async (step: StepDef<C>, c: C, progress: ProgressLine): Promise<string | undefined> => {
    const report = o.reports.find((r) => r.name === step.name)!;
    const t0 = performance.now();
    const aheadStop = new AbortController();
    try {
      step.ahead?.(c, AbortSignal.any([o.signal, aheadStop.signal]));
      // Inside: a step whose start cannot be recorded (its state write fails) is that step's failure.
      const recording = Promise.resolve(o.onStatus?.(step.name, 'running'));
      if (step.recordStartAlongside) recording.catch(() => undefined); // awaited after the run
      else await recording;
      let ran: StepOutcome | string | void;
      try {
        ran = await step.run(c, progress);
      } finally {
        await recording.catch(() => undefined); // the run's own failure first; a later state write after this one
      }
      await recording;
      const { status, note } = outcomeOf(ran);
      report.status = status;
      if (note) report.note = note;
      report.ms = performance.now() - t0;
      await o.onStatus?.(step.name, report.status);
      return note;
    } catch (e) {
      report.status = 'failed';
      report.ms = performance.now() - t0;
      await o.onStatus?.(step.name, 'failed').catch(() => undefined);
      throw e;
    } finally {
      aheadStop.abort(); // what `ahead` started and the run did not wait for ends with the step
    }
  };

  /** Where a background step is joined: before the first step that waits for it, else at the end. */
  const joined = new Set<string>();
  const joinTask = (step: StepDef<C>): ListrTask<C> => {
    joined.add(step.name);
    return {
      title: `${step.title} (alongside)`,
      task: async (_c, task) => {
        const r = await background.get(step.name)!.done;
        if ('error' in r) throw r.error;
        task.title = `${step.title}: ${r.note ?? 'done'} (ran alongside)`;
      },
    };
  };
  const runsInBackground = (step: StepDef<C>) => Boolean(step.background) && !o.prompter;

  const tasks: ListrTask<C>[] = [];
  for (const step of run) {
    for (const bg of step.waitFor ?? []) {
      const b = run.find((x) => x.name === bg && runsInBackground(x));
      if (b && !joined.has(b.name)) tasks.push(joinTask(b));
    }
    tasks.push({
      title: step.title,
      task: async (c, task) => {
        o.signal.throwIfAborted();
        const failed = failedInBackground();
        if (failed) throw failed.error;
        const report = o.reports.find((r) => r.name === step.name)!;
        for (const need of step.needs ?? []) {
          const st = statusOf(need);
          if (st !== 'done' && st !== 'earlier run') {
            throw new UserError(
              `${step.name} needs the result of ${need}, which ${st === 'skipped' ? 'was skipped' : st === 'failed' ? 'failed' : 'has not run'}` +
                ` in this run or the recorded one; run it first (--from ${need})`,
            );
          }
        }
        if (o.prompter) {
          const answer = await o.prompter.ask(step.name, step.title);
          if (answer === 'abort') throw new StepAborted(step.name);
          if (answer === 'skip') {
            report.status = 'skipped';
            report.note = 'skipped at the prompt';
            await o.onStatus?.(step.name, 'skipped');
            task.skip(`${step.title}: skipped at the prompt`);
            return;
          }
        }
        const progress = throttle(o.output === 'tty' ? 100 : 2000, (line) => { task.output = line; });
        if (runsInBackground(step)) {
          const entry: { done: Promise<Outcome>; outcome?: Outcome } = {
            done: execute(step, c, () => {}).then((note) => ({ note }), (error: unknown) => ({ error })),
          };
          void entry.done.then((outcome) => { entry.outcome = outcome; });
          background.set(step.name, entry);
          task.title = `${step.title}: started, runs alongside the next steps`;
          return;
        }
        const note = await execute(step, c, progress);
        if (note) task.title = `${step.title}: ${note}`;
      },
    });
  }
  for (const b of run.filter(runsInBackground)) if (!joined.has(b.name)) tasks.push(joinTask(b));
  try {
    await new Listr<C, ListrRendererValue, ListrRendererValue>(tasks, listrOptions(o.output, ctx)).run();
    return { ok: true, rollback: [] };
  } catch (error) {
    // A background step still running finishes (or fails) before anything is undone.
    await Promise.all([...background.values()].map((b) => b.done));
    const log = o.output === 'json' ? () => {} : (line: string) => process.stderr.write(`${line}\n`);
    let rollback: UndoOutcome[] = [];
    if (o.stack.size > 0) {
      log(`rolling back: ${o.stack.names().reverse().join(', ')}`);
      rollback = await o.stack.unwind((name, phase, err) => {
        if (phase === 'ok') log(`  undone: ${name}`);
        if (phase === 'fail') log(`  UNDO FAILED: ${name}: ${err}`);
      });
    }
    return { ok: false, error, rollback };
  }
}

export function describeError(e: unknown, signal: AbortSignal): string {
  if (signal.aborted) return `interrupted (${String(signal.reason ?? 'signal')})`;
  return redact(e instanceof Error ? e.message : String(e));
}

/** Progress lines at most every `ms` (a line-based log must not get one per megabyte), unless the step says `always` (it spaces its own lines). */
export function throttle(ms: number, fn: (line: string) => void): ProgressLine {
  let last = 0;
  return (line, always = false) => {
    const now = Date.now();
    if (always || now - last >= ms) {
      last = now;
      fn(line);
    }
  };
}

/** The operator answered "abort" at a `--step` prompt. */
export class StepAborted extends Error {
  constructor(readonly step: string) {
    super(`aborted at the prompt before ${step}`);
    this.name = 'StepAborted';
  }
}
