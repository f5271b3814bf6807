/**
 * Runbook state: which steps of the last run are done and the results later steps need, so that
 * `--from STEP` after a crash knows what was done. One small JSON file on the remote volume
 * (`.ferry/state-<runbook>-<NAME>.json`, next to the data it describes) and a copy on this
 * machine (it also names the local work dir). Both are written atomically (temp file + rename).
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { writeJsonAtomic } from './atomic-file.ts';
import type { RemoteHost } from './hosts/remote-host.ts';
import { readFileScript, writeFileScript } from './remote-scripts.ts';
import type { RemoteLayout } from './remote-layout.ts';
import type { StepStatus } from './runbook-runner.ts';

export interface RunbookState {
  version: 1;
  runbook: string;
  runId: string;
  target: string;
  liveDir: string;
  startedAt: string;
  updatedAt: string;
  /** The run reached its end: completed, or failed and unwound. */
  finished: boolean;
  outcome?: string;
  steps: Record<string, StepStatus>;
  /** Per step, what later steps need from it (plain JSON). */
  results: Record<string, unknown>;
}

/** Root of the local state: CHROMA_FERRY_STATE_DIR, else $XDG_STATE_HOME/chroma-ferry, else ~/.local/state/chroma-ferry. */
export function localStateRoot(): string {
  if (process.env.CHROMA_FERRY_STATE_DIR) return path.resolve(process.env.CHROMA_FERRY_STATE_DIR);
  const base = process.env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  return path.join(base, 'chroma-ferry');
}

export class RunbookStateStore {
  readonly remoteFile: string;
  readonly localFile: string;

  constructor(
    private readonly host: RemoteHost,
    layout: RemoteLayout,
    readonly runbook: string,
  ) {
    this.remoteFile = path.posix.join(layout.ferry, `state-${runbook}-${layout.name}.json`);
    const key = crypto.createHash('sha256').update(`${host.label}\0${layout.live}`).digest('hex').slice(0, 16);
    this.localFile = path.join(localStateRoot(), `${runbook}-${key}.json`);
  }

  /** The remote copy (it describes the remote), else the local one; null when neither exists. */
  async load(signal?: AbortSignal): Promise<RunbookState | null> {
    const remote = parseState((await this.host.run(readFileScript(this.remoteFile), { signal })).stdout);
    if (remote) return remote;
    try {
      return parseState(await fs.readFile(this.localFile, 'utf8'));
    } catch {
      return null;
    }
  }

  async save(state: RunbookState, signal?: AbortSignal): Promise<void> {
    state.updatedAt = new Date().toISOString();
    await fs.mkdir(path.dirname(this.localFile), { recursive: true });
    await writeJsonAtomic(this.localFile, state);
    await this.host.run(writeFileScript(this.remoteFile, JSON.stringify(state)), { signal });
  }
}

export function newState(runbook: string, runId: string, target: string, liveDir: string, stepNames: readonly string[]): RunbookState {
  const now = new Date().toISOString();
  return {
    version: 1, runbook, runId, target, liveDir, startedAt: now, updatedAt: now, finished: false,
    steps: Object.fromEntries(stepNames.map((n) => [n, 'not run' as StepStatus])), results: {},
  };
}

function parseState(text: string): RunbookState | null {
  if (!text.trim()) return null;
  try {
    const s = JSON.parse(text) as Partial<RunbookState>;
    if (s.version !== 1 || typeof s.runId !== 'string' || typeof s.steps !== 'object' || !s.steps) return null;
    return { ...s, results: s.results ?? {} } as RunbookState;
  } catch {
    return null;
  }
}

/** The first step of `names` not done in `state` (where `--from` would pick up). */
export function nextStep(state: RunbookState, names: readonly string[]): string | undefined {
  return names.find((n) => state.steps[n] !== 'done' && state.steps[n] !== 'skipped');
}
