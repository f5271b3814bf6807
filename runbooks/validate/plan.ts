/**
 * `validate --plan`: the gate's steps and what each would read here, from a read-only look at both
 * databases and the migration's record (the same refusals as the gate), then what a FAILED gate
 * would do: with --auto-rollback the restore's own plan (runbooks/restore/plan.ts), which says
 * exactly which collections it would delete and re-create. Nothing is written.
 */
import { openSource } from '../../lib/migrate/endpoints.ts';
import type { GateMigration } from '../../lib/gate/recorded-migration.ts';
import { formatRestorePlan, type RestorePlan } from '../restore/plan.ts';
import { relabel, reportFiles, type ValidateOptions, type ValidatePlanCtx } from './context.ts';
import { VALIDATE_STEP_OBJECTS } from './index.ts';
import { describeTransform, restoreCommandFor } from './report.ts';
import { planRollBack } from './rollback.ts';
import { plannedAliasUndo } from '../migrate/undo.ts';

export interface ValidatePlan {
  runbook: 'validate';
  old: string;
  new: string;
  transform: string;
  steps: { name: string; title: string; does: string[]; undo: string }[];
  reports: { markdown: string; json: string };
  /** A FAILED gate: the backup a rollback restores, the command that does it, and the restore this run would carry out (--auto-rollback) or null. */
  rollback: { backup: string | null; command: string; restore: RestorePlan | null; undo?: string };
}

/** The plan of a gate whose facts are known. */
export function validatePlanOf(p: ValidatePlanCtx, rest: Pick<ValidatePlan, 'reports' | 'rollback'>): ValidatePlan {
  return {
    runbook: 'validate', old: p.old, new: p.new, transform: p.transform,
    steps: VALIDATE_STEP_OBJECTS.map((s) => ({ name: s.name, title: s.title, does: s.plan(p).notes, undo: s.undoText })),
    ...rest,
  };
}

/** `m`: the migration's record, from prepareValidate (its refusals come first, as in a run). */
export async function planValidate(o: ValidateOptions, m: GateMigration): Promise<ValidatePlan> {
  const old = await openSource(o.oldUrl, { signal: o.signal, scope: o.oldScope }).catch((e) => { throw relabel(e, '--source-url', '--old-db-url'); });
  let p: ValidatePlanCtx;
  try {
    const neu = await openSource(o.newUrl, { signal: o.signal, side: 'target', scope: o.newScope }).catch((e) => { throw relabel(e, '--source-url', '--new-db-url'); });
    try {
      p = {
        old: old.label, new: neu.label, transform: describeTransform(m), collections: await old.listCollections(),
        queries: o.queries, testQueries: o.testQueries, topK: o.topK, sample: o.sample,
      };
    } finally {
      await neu.close();
    }
  } finally {
    await old.close();
  }
  const undo = o.autoRollback && m.backup ? await plannedAliasUndo(m.backup, o.newUrl) : null;
  const restore = o.autoRollback && m.backup && !undo ? await planRollBack(m.backup, o) : null;
  const command = restoreCommandFor(m.backup, o.newUrl, o.newScope);
  return validatePlanOf(p, { reports: reportFiles(o.output), rollback: { backup: m.backup, command, restore, ...(undo ? { undo } : {}) } });
}

export function formatValidatePlan(p: ValidatePlan): string {
  const lines = [`validate plan: ${p.old} -> ${p.new} (transform ${p.transform}); nothing has been done`];
  p.steps.forEach((s, i) => {
    lines.push(`  ${i + 1}. ${s.name}: ${s.does[0] ?? ''}`, ...s.does.slice(1).map((d) => `     ${d}`), `     undo: ${s.undo}`);
  });
  lines.push(`  then: write ${p.reports.markdown} and ${p.reports.json} (overall status, each check's figures, the rollback decision)`);
  const { command, restore, undo } = p.rollback;
  if (undo) {
    lines.push(`  if the gate FAILS (--auto-rollback): ${undo}`);
  } else if (restore) {
    lines.push('  if the gate FAILS (--auto-rollback):', ...formatRestorePlan(restore).split('\n').map((l) => `    ${l}`));
  } else {
    lines.push(`  if the gate FAILS: rollback_triggered in the report, nothing restored by this run (without --auto-rollback); ` +
      `the rollback is ${command}`);
  }
  return lines.join('\n');
}
