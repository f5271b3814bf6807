/**
 * One runbook step as one object: its title, the earlier steps it needs, what it runs, its undo,
 * the result it records for a later run (`--from`, `--only`) and what `--plan` prints for it. The
 * runner (lib/engine/runner.ts) runs a list of them; a plan is the list's `plan()` parts in order.
 *
 * `run` and `plan` build their remote scripts with the same calls (a step-local builder taking the
 * facts both have), so what a plan prints is what the run executes; test/unit checks each step
 * against a recording host.
 */
import type { CompensationStack } from './compensation.ts';
import type { PlanCommand, PlanStep } from './plan.ts';
import type { StepDef, StepOutcome } from './runner.ts';

/** A step's progress line for the task list; `always` skips the runner's spacing (the step spaces its own lines). */
export type ProgressLine = (line: string, always?: boolean) => void;

/** A step's part of a plan: the commands, in order, and notes for what has no command. */
export interface PlanPart {
  commands: PlanCommand[];
  notes: string[];
}

/**
 * What a completed step records in both copies of the runbook state (ids, checksums, counts,
 * outcomes; never a path on this machine), and how a later run takes it back. The recorded value
 * is read from a file on the remote: `parse` checks it before anything uses it.
 */
export interface SavedResult<C, R> {
  save(c: C): R;
  /** The recorded value, checked; throws a UserError (naming what to do instead) when it is not one. */
  parse(raw: unknown): R;
  /** Puts the recorded value back into this run's context. */
  load(c: C, r: R): void;
}

/** Paths on this machine a completed step records: kept in the local copy of the state only. */
export interface LocalResult<C, L extends Record<string, string | undefined>> {
  save(c: C): L;
  /**
   * Work files of this step that later steps use (their `needsLocal`): one dir, trusted only inside
   * this run's own dir. `what` names them in a refusal, `redo` says how to make them again.
   */
  workFiles?: {
    /** The entry of `save` that holds the dir. */
    key: string;
    what(runId: string): string;
    redo: string;
    use(c: C, dir: string): void;
  };
}

export interface Step<C, P, R = unknown, L extends Record<string, string | undefined> = Record<string, string | undefined>> extends StepDef<C> {
  /** What undoes the step when a later one fails (printed by --plan and the human runbook). */
  readonly undoText: string;
  /** The name of its undo on the compensation stack (default: the step's name). */
  readonly undoName?: string;
  /** Earlier steps whose local work files (not only their recorded result) this step uses. */
  readonly needsLocal?: readonly string[];
  run(c: C, progress: ProgressLine): Promise<StepOutcome>;
  /** The step's compensation; put on the stack by `armUndo` once there is something to undo. */
  undo?(c: C): Promise<void>;
  /** What `--plan` prints for this step: the same remote scripts `run` executes, for a person. */
  plan(p: P): PlanPart;
  readonly result?: SavedResult<C, R>;
  readonly local?: LocalResult<C, L>;
}

/** Any step of a runbook whose context is C and plan context P (its results of their own types). */
export type AnyStep<C, P> = Step<C, P, unknown>;

/** Puts the step's undo on the stack (under its undo name). */
export function armUndo<C>(stack: CompensationStack, step: Pick<Step<C, unknown>, 'name' | 'undoName' | 'undo'>, c: C): void {
  const undo = step.undo;
  if (!undo) throw new Error(`step ${step.name} has no undo`);
  stack.push(step.undoName ?? step.name, () => undo.call(step, c));
}

/** A step's section of a plan. */
export function planStep<P>(step: AnyStep<unknown, P>, p: P): PlanStep {
  return { name: step.name, title: step.title, undo: step.undoText, ...step.plan(p) };
}
