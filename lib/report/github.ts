import fs from 'node:fs';
import { redact } from './secrets.ts';
import { formatMs } from '../common/units.ts';

/** GitHub Actions niceties: a Markdown job summary and `::error::` annotations. */

export function onGithubActions(): boolean {
  return process.env.GITHUB_ACTIONS === 'true';
}

/** Append Markdown to $GITHUB_STEP_SUMMARY when it is set (any CI that sets it). */
export function appendStepSummary(markdown: string): void {
  const file = process.env.GITHUB_STEP_SUMMARY;
  if (file) fs.appendFileSync(file, `${redact(markdown)}\n`);
}

/** A workflow-command annotation; newlines and % are escaped as GitHub requires. */
export function annotateError(message: string, title = 'chroma-ferry'): void {
  if (!onGithubActions()) return;
  const esc = (s: string) => s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
  process.stdout.write(`::error title=${esc(title).replace(/[:,]/g, ' ')}::${esc(redact(message))}\n`);
}

export interface MarkdownStep {
  name: string;
  status: string;
  ms: number;
  note?: string;
}

/** Text safe inside a Markdown table cell. */
export function markdownCell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function runSummaryMarkdown(o: {
  title: string;
  ok: boolean;
  facts: [string, string][];
  steps: MarkdownStep[];
  warnings: string[];
  error?: string;
}): string {
  const cell = markdownCell;
  const lines = [`## ${o.ok ? '✅' : '❌'} ${cell(o.title)}`, ''];
  if (o.error) lines.push(`**Error:** ${cell(o.error)}`, '');
  lines.push('| | |', '| --- | --- |', ...o.facts.map(([k, v]) => `| ${cell(k)} | ${cell(v)} |`), '');
  lines.push('| step | status | time | note |', '| --- | --- | --- | --- |');
  for (const s of o.steps) lines.push(`| ${s.name} | ${s.status} | ${formatMs(s.ms)} | ${cell(s.note ?? '')} |`);
  for (const w of o.warnings) lines.push('', `> ⚠️ ${cell(w)}`);
  return lines.join('\n');
}

