import type { ListrBaseClassOptions, ListrRendererValue } from 'listr2';

/**
 * How a run talks: `tty` (Listr2's live renderer), `plain` (line-based, for CI and pipes) or
 * `json` (silent while running, one JSON object at the end).
 */
export type OutputMode = 'tty' | 'plain' | 'json';

export function isCI(): boolean {
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== 'false' && ci !== '0';
}

export function detectOutputMode(json: boolean): OutputMode {
  if (json) return 'json';
  return process.stdout.isTTY && !isCI() ? 'tty' : 'plain';
}

export type AnyListrOptions<Ctx> = ListrBaseClassOptions<Ctx, ListrRendererValue, ListrRendererValue>;

/** Listr2 options for a runbook: our own signal handling, the renderer for the output mode. */
export function listrOptions<Ctx>(mode: OutputMode, ctx: Ctx): AnyListrOptions<Ctx> {
  const base = { ctx, exitOnError: true, registerSignalListeners: false } as const;
  if (mode === 'json') return { ...base, renderer: 'silent', fallbackRenderer: 'silent' };
  if (mode === 'plain') return { ...base, renderer: 'simple', fallbackRenderer: 'simple' };
  return { ...base, renderer: 'default', fallbackRenderer: 'simple', rendererOptions: { collapseSubtasks: false } } as AnyListrOptions<Ctx>;
}
