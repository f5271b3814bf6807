import fs from 'node:fs';
/**
 * A runbook's `--plan`: its steps and, under each, the commands a person would run by hand, in
 * order. Each step's `plan()` (lib/engine/step.ts) builds its part with the same script calls its
 * `run()` makes; rendered here as a POSIX sh script (comments + commands) or kept as data for `--json`.
 */
import { fileURLToPath } from 'node:url';
import type { RemoteHost, RenderedCommand, RestartOptions } from '../hosts/remote-host.ts';

export interface PlanCommand {
  /** What the command does. */
  what: string;
  /** Every command runs on this machine; `via` names the host it reaches (ssh, fly) or acts on (local:). */
  via: string;
  command: string;
  /** What its output must show before going on. */
  expect?: string;
}

export interface PlanStep {
  name: string;
  title: string;
  undo: string;
  commands: PlanCommand[];
  notes: string[];
}

export interface RunbookPlan {
  runbook: string;
  runId: string;
  generatedAt: string;
  target: string;
  liveDir: string;
  /** One-line facts for the script's header (what goes where, what to expect). */
  header: string[];
  steps: PlanStep[];
}

/** argv that runs this CLI on this machine (node + bin), for a plan's local commands. */
export function cliArgv(): string[] {
  // This module runs from lib/engine/ (through tsx) or from dist/lib/engine/ (the compiled build).
  const fromLib = fileURLToPath(new URL('../../bin/chroma-ferry.js', import.meta.url));
  return [process.execPath, fs.existsSync(fromLib) ? fromLib : fileURLToPath(new URL('../../../bin/chroma-ferry.js', import.meta.url))];
}

export function planCommand(what: string, r: RenderedCommand, hostLabel: string, expect?: string): PlanCommand {
  return { what, via: r.on === 'local' ? hostLabel : r.on, command: r.command, expect };
}

/** The restart step of a plan: the host's restart commands (bounded, output in `o.logFile`), or a note when it has none. */
export function restartPlanStep(host: RemoteHost, o: Pick<RestartOptions, 'timeoutMs' | 'logFile'>): Pick<PlanStep, 'commands' | 'notes'> {
  const rendered = host.renderRestart(o);
  return {
    commands: rendered.map((r) => planCommand('restart the Chroma server', r, host.label)),
    notes: rendered.length ? [] : ['no --restart-cmd: restart the Chroma server yourself'],
  };
}

/** The plan as a POSIX sh script: every step a comment block, every command runnable as printed. */
export function formatPlan(p: RunbookPlan): string {
  const out: string[] = [
    '#!/bin/sh',
    `# chroma-ferry ${p.runbook} plan, run ${p.runId}, generated ${p.generatedAt}`,
    ...p.header.map((h) => `# ${h}`),
    '# Nothing has been executed. Run the commands in order in a POSIX shell on this machine and check',
    '# each "expect" line before going on (sh -e on this file runs it all). If a step fails, undo what',
    `# was done as each step says, newest first (runbooks/${p.runbook}/README.md).`,
    'set -e',
  ];
  p.steps.forEach((s, i) => {
    out.push('', `# ===== ${i + 1}. ${s.title}`, `# undo: ${s.undo}`);
    for (const n of s.notes) out.push(`# note: ${n}`);
    for (const c of s.commands) {
      out.push(`# ${c.what} (on ${c.via})`);
      if (c.expect) out.push(`# expect: ${c.expect}`);
      out.push(c.command);
    }
  });
  return `${out.join('\n')}\n`;
}
