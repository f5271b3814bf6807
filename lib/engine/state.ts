/**
 * Runbook state: which steps of the last run are done and the results later steps need, so that
 * `--from STEP` after a crash knows what was done. One small JSON file on the remote volume
 * (`.ferry/state-<runbook>-<NAME>.json`, next to the data it describes) and a copy on this
 * machine. Both are written atomically (temp file + rename; no temp file stays behind, and a full
 * volume or state dir says "volume full: ..." as a VolumeFullError: a run that meets it part-way
 * still ends with its summary). The remote copy holds ids,
 * checksums, counts and step outcomes only: results naming paths on this machine (`local`) are
 * kept in the local copy alone, and never read from the remote one.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { writeJsonAtomic } from './atomic-file.ts';
import type { RemoteHost } from '../hosts/remote-host.ts';
import { refusalError, refusalLine, refusalOf } from '../remote/refusals.ts';
import { VolumeFullError } from '../common/volume-full.ts';
import { readFileScript, writeFileScript } from '../remote/scripts.ts';
import type { RemoteLayout } from '../remote/layout.ts';
import type { RemoteScript } from '../remote/shell.ts';
import type { StepStatus } from './runner.ts';

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
  /** Per step, what later steps need from it (plain JSON, no local path). */
  results: Record<string, unknown>;
  /** Per step, its results that are paths on this machine: in the local copy only. */
  local?: Record<string, unknown>;
}

/** Both copies of the state; either may be missing. The remote one never has a `local` part. */
export interface StoredStates {
  remote: RunbookState | null;
  local: RunbookState | null;
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
  private readonly volume: string;

  constructor(
    private readonly host: RemoteHost,
    layout: RemoteLayout,
    readonly runbook: string,
  ) {
    this.volume = layout.volume;
    this.remoteFile = path.posix.join(layout.ferry, `state-${runbook}-${layout.name}.json`);
    const key = crypto.createHash('sha256').update(`${host.label}\0${layout.live}`).digest('hex').slice(0, 16);
    this.localFile = path.join(localStateRoot(), `${runbook}-${key}.json`);
  }

  /** The remote copy (it describes the remote), else the local one; null when neither exists. */
  async load(signal?: AbortSignal): Promise<RunbookState | null> {
    const { remote, local } = await this.loadBoth(signal);
    return remote ?? local;
  }

  /** Both copies, each as it is (for comparing them); the remote one without any `local` part. */
  async loadBoth(signal?: AbortSignal): Promise<StoredStates> {
    const remote = parseState((await this.host.run(readFileScript(this.remoteFile), { signal })).stdout);
    if (remote) delete remote.local; // paths on this machine are never taken from the remote
    let local: RunbookState | null = null;
    try {
      local = parseState(await fs.readFile(this.localFile, 'utf8'));
    } catch {
      // none on this machine
    }
    return { remote, local };
  }

  /**
   * The whole state to the local copy; to the remote, all but its `local` part. A state without
   * one (loaded from the remote) keeps the local part this machine has of the same run.
   */
  async save(state: RunbookState, signal?: AbortSignal): Promise<void> {
    const write = this.remoteWriteScript(state);
    await this.saveLocal(state);
    const where = { host: this.host.label, volume: this.volume };
    try {
      await this.host.run(write, { signal });
    } catch (e) {
      // A full volume part-way through a run: the run ends with its summary (not a refusal).
      const r = refusalOf(e);
      if (r?.reason === 'volume-full') throw new VolumeFullError(refusalLine(r, where));
      throw refusalError(e, where) ?? e;
    }
  }

  /**
   * The remote copy's write as a script (stamped now), for a command that runs it with others:
   * the closing state, written before the lock is released in the same remote command.
   */
  remoteWriteScript(state: RunbookState): RemoteScript {
    state.updatedAt = new Date().toISOString();
    return writeFileScript(this.remoteFile, JSON.stringify({ ...state, local: undefined }));
  }

  /** This machine's copy alone (the remote one was written by remoteWriteScript's command). */
  async saveLocal(state: RunbookState): Promise<void> {
    await fs.mkdir(path.dirname(this.localFile), { recursive: true });
    let local = state;
    if (!state.local) {
      const mine = parseState(await fs.readFile(this.localFile, 'utf8').catch(() => ''));
      if (mine?.local && mine.runId === state.runId) local = { ...state, local: mine.local };
    }
    await writeJsonAtomic(this.localFile, local);
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

/**
 * Where the remote copy of a run's state differs from this machine's (run id, finish, step
 * statuses, recorded results); undefined when they agree.
 */
export function stateDifference(remote: RunbookState, local: RunbookState): string | undefined {
  if (remote.runId !== local.runId) return `run ${remote.runId} on the remote, run ${local.runId} here`;
  for (const name of new Set([...Object.keys(remote.steps), ...Object.keys(local.steps)])) {
    if (remote.steps[name] !== local.steps[name]) return `${name} ${remote.steps[name] ?? 'absent'} on the remote, ${local.steps[name] ?? 'absent'} here`;
  }
  if (remote.finished !== local.finished || remote.outcome !== local.outcome) {
    return `${remote.finished ? `finished (${remote.outcome ?? ''})` : 'not finished'} on the remote, ${local.finished ? `finished (${local.outcome ?? ''})` : 'not finished'} here`;
  }
  for (const name of new Set([...Object.keys(remote.results), ...Object.keys(local.results)])) {
    if (JSON.stringify(remote.results[name]) !== JSON.stringify(local.results[name])) return `the recorded result of ${name} (ids, checksums, counts) differs`;
  }
  return undefined;
}

/** The first step of `names` not done in `state` (where `--from` would pick up). */
export function nextStep(state: RunbookState, names: readonly string[]): string | undefined {
  return names.find((n) => state.steps[n] !== 'done' && state.steps[n] !== 'skipped');
}
