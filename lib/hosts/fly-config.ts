/**
 * Defaults for `fly:` targets from fly.toml (`--config FILE`, else `./fly.toml`): `app` becomes
 * `--target fly:APP` when --target is absent, `[mounts] destination` becomes `--volume` when
 * --volume was not given, `[http_service] internal_port` is the port `fly proxy` forwards to for
 * health checks. Flags always win. A target taken from fly.toml is never silent: the choice
 * carries the file it came from, said in plans, summaries and error lines
 * (`target fly:APP from ./fly.toml`).
 *
 * `[[http_service.checks]] path` says what the app is: Chroma's own endpoints (`/api/v2/heartbeat`,
 * ...) a Chroma server, verified through its API; any other path (`/health`) an app that embeds
 * Chroma, verified as `--app-health-url` at that path through `fly proxy` when neither
 * `--health-url` nor `--app-health-url` is given.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { parse as parseToml } from 'smol-toml';
import { UserError } from '../common/errors.ts';
import { parseFlyApp } from '../locations/target.ts';
import { FLY_MACHINE_RE } from './fly.ts';

export interface FlyToml {
  file: string;
  app?: string;
  /** `[mounts] destination` (or the first `[[mounts]]`). */
  volume?: string;
  /** `[http_service] internal_port`. */
  internalPort?: number;
  /** The first `[[http_service.checks]]` with a `path` (an HTTP check of the service). */
  checkPath?: string;
}

/** Chroma's own health endpoints: a service checked at one of them is a Chroma server. */
const CHROMA_CHECK_PATHS = new Set(['/api/v1', '/api/v2', '/api/v1/heartbeat', '/api/v2/heartbeat', '/api/v1/healthcheck', '/api/v2/healthcheck', '/api/v1/version', '/api/v2/version']);

/** Whether a fly.toml check path is one of Chroma's own endpoints (else it is an app's health path). */
export function isChromaCheckPath(p: string): boolean {
  return CHROMA_CHECK_PATHS.has(p.replace(/\/+$/, ''));
}

/** Read fly.toml; `explicit` is --config (must exist), else ./fly.toml (absent: undefined). */
export function readFlyToml(explicit: string | undefined, cwd = process.cwd()): FlyToml | undefined {
  const file = path.resolve(cwd, explicit ?? 'fly.toml');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    if (explicit !== undefined) throw new UserError(`--config ${explicit}: cannot read the file`);
    return undefined;
  }
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`${file}: not valid TOML: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}`);
  }
  const out: FlyToml = { file };
  if (doc.app !== undefined) {
    if (typeof doc.app !== 'string') throw new UserError(`${file}: app must be a string`);
    out.app = parseFlyApp(`${file}: app`, doc.app);
  }
  const mounts = Array.isArray(doc.mounts) ? doc.mounts[0] : doc.mounts;
  const dest = (mounts as Record<string, unknown> | undefined)?.destination;
  if (dest !== undefined) {
    if (typeof dest !== 'string') throw new UserError(`${file}: [mounts] destination must be a string`);
    out.volume = dest;
  }
  const port = (doc.http_service as Record<string, unknown> | undefined)?.internal_port;
  if (port !== undefined) {
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw new UserError(`${file}: [http_service] internal_port must be a port number`);
    }
    out.internalPort = port;
  }
  const service = doc.http_service as Record<string, unknown> | undefined;
  const checks = Array.isArray(service?.checks) ? service.checks : service?.checks !== undefined ? [service.checks] : [];
  for (const check of checks as Record<string, unknown>[]) {
    const p = check?.path;
    if (p === undefined) continue;
    if (typeof p !== 'string' || !p.startsWith('/') || /\s/.test(p)) throw new UserError(`${file}: [[http_service.checks]] path must be a path such as /health`);
    // A query is not carried over: a URL the tool prints holds none (it could carry a token).
    out.checkPath = p.replace(/[?#].*$/, '');
    break;
  }
  return out;
}

export interface TargetChoice {
  /** --target, or fly:APP from fly.toml. */
  target?: string;
  /** Where the target came from when it was not --target: the fly.toml as given (`./fly.toml`, or --config's value). */
  targetSource?: string;
  /** --volume, or fly.toml's mount destination for a fly: target when --volume was not given. */
  volume: string;
  machine?: string;
  internalPort?: number;
  /** fly.toml's `[[http_service.checks]] path` when it is not a Chroma endpoint: the app's health path (`/health`). */
  appHealthPath?: string;
}

/**
 * Apply fly.toml defaults to the target flags. fly.toml is read only when it can matter: with
 * --config, without --target, or for a fly: target. Its mount and port are used for the app it
 * names (or for any app with an explicit --config).
 */
export function chooseTarget(
  flags: { target?: string; volume: string; machine?: string; config?: string },
  cmd: Pick<Command, 'getOptionValueSource'>,
): TargetChoice {
  const wantsToml = flags.config !== undefined || flags.target === undefined || flags.target.startsWith('fly:');
  const toml = wantsToml ? readFlyToml(flags.config) : undefined;
  const target = flags.target ?? (toml?.app ? `fly:${toml.app}` : undefined);
  const targetSource = flags.target === undefined && target !== undefined ? flags.config ?? './fly.toml' : undefined;
  const flyApp = target?.startsWith('fly:') ? target.slice('fly:'.length) : undefined;
  if (flyApp === undefined) {
    if (flags.machine !== undefined) throw new UserError('--machine applies to fly: targets only');
    if (flags.config !== undefined) throw new UserError('--config applies to fly: targets only');
    return { target, volume: flags.volume };
  }
  if (flags.machine !== undefined && !FLY_MACHINE_RE.test(flags.machine)) {
    throw new UserError(`--machine ${JSON.stringify(flags.machine)}: not a Fly machine id (lowercase letters and digits)`);
  }
  const applies = toml !== undefined && (flags.config !== undefined || toml.app === undefined || toml.app === flyApp);
  const source = cmd.getOptionValueSource('volume');
  const volumeExplicit = source !== undefined && source !== 'default';
  return {
    target,
    ...(targetSource ? { targetSource } : {}),
    volume: !volumeExplicit && applies && toml.volume !== undefined ? toml.volume : flags.volume,
    machine: flags.machine,
    internalPort: applies ? toml.internalPort : undefined,
    ...(applies && toml.checkPath !== undefined && !isChromaCheckPath(toml.checkPath) ? { appHealthPath: toml.checkPath } : {}),
  };
}

/** `fly:APP from ./fly.toml` when the target came from a file, else the target as given. */
export function describeTarget(choice: Pick<TargetChoice, 'target' | 'targetSource'>): string {
  return choice.targetSource ? `${choice.target} from ${choice.targetSource}` : String(choice.target);
}

/** A failure on a target taken from fly.toml says so: `... (target fly:APP from ./fly.toml)`; the error keeps its kind and exit code. */
export function sayTargetSource(e: unknown, choice: Pick<TargetChoice, 'target' | 'targetSource'>): void {
  if (choice.targetSource && e instanceof Error && !e.message.includes(describeTarget(choice))) {
    e.message = `${e.message} (target ${describeTarget(choice)})`;
  }
}

/** Run `fn` on the chosen target; its failure names where the target came from (sayTargetSource). */
export async function withTargetSource<T>(choice: Pick<TargetChoice, 'target' | 'targetSource'>, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    sayTargetSource(e, choice);
    throw e;
  }
}

type TargetFlagsOf = Parameters<typeof chooseTarget>[0];

/**
 * A command action on a target (deploy, rollback) whose failures name where a target from
 * fly.toml came from. The choice is made again from the same flags (reading fly.toml has no
 * effects), so the action keeps its own signature.
 */
export function explainTargetSource<F extends TargetFlagsOf, R extends unknown[]>(
  action: (flags: F, cmd: Command, ...rest: R) => Promise<void>,
): (flags: F, cmd: Command, ...rest: R) => Promise<void> {
  return async (flags, cmd, ...rest) => {
    try {
      await action(flags, cmd, ...rest);
    } catch (e) {
      let choice: TargetChoice | undefined;
      try {
        choice = chooseTarget(flags, cmd);
      } catch { /* the action already failed on the same flags: its error is the one to report */ }
      if (choice) sayTargetSource(e, choice);
      throw e;
    }
  };
}
