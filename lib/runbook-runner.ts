/**
 * Runs a runbook: its ordered steps as one Listr2 task list, each step's duration and note
 * recorded, and on failure, Ctrl-C or SIGTERM the run's compensation stack unwound once.
 */
import { Listr, type ListrRendererValue, type ListrTask } from 'listr2';
import { CompensationStack, type UndoOutcome } from './compensation.ts';
import { listrOptions, type OutputMode } from './output.ts';
import { redact } from './secrets.ts';
import type { StepPrompter } from './step-prompt.ts';

export interface StepDef<C> {
  name: string;
  title: string;
  /** Returns a short note for the summary; a note starting with "skipped" marks the step skipped. */
  run(c: C, progress: (line: string) => void): Promise<string | void>;
}

export interface StepReport {
  name: string;
  status: 'done' | 'skipped' | 'failed' | 'not run';
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

export async function runSteps<C>(
  steps: StepDef<C>[],
  ctx: C,
  o: { output: OutputMode; signal: AbortSignal; stack: CompensationStack; reports: StepReport[]; prompter?: StepPrompter },
): Promise<RunOutcome> {
  const tasks: ListrTask<C>[] = steps.map((step) => ({
    title: step.title,
    task: async (c, task) => {
      o.signal.throwIfAborted();
      const report = o.reports.find((r) => r.name === step.name)!;
      if (o.prompter) {
        const answer = await o.prompter.ask(step.name, step.title);
        if (answer === 'abort') throw new StepAborted(step.name);
        if (answer === 'skip') {
          report.status = 'skipped';
          report.note = 'skipped at the prompt';
          task.skip(`${step.title}: skipped at the prompt`);
          return;
        }
      }
      const t0 = performance.now();
      try {
        const note = await step.run(c, throttle(o.output === 'tty' ? 100 : 2000, (line) => { task.output = line; }));
        report.status = note?.startsWith('skipped') ? 'skipped' : 'done';
        if (note) {
          report.note = note;
          task.title = `${step.title}: ${note}`;
        }
      } catch (e) {
        report.status = 'failed';
        throw e;
      } finally {
        report.ms = performance.now() - t0;
      }
    },
  }));
  try {
    await new Listr<C, ListrRendererValue, ListrRendererValue>(tasks, listrOptions(o.output, ctx)).run();
    return { ok: true, rollback: [] };
  } catch (error) {
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

/** Progress lines at most every `ms` (a line-based log must not get one per megabyte). */
export function throttle(ms: number, fn: (line: string) => void): (line: string) => void {
  let last = 0;
  return (line) => {
    const now = Date.now();
    if (now - last >= ms) {
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
