/**
 * The emulated WAN link of `bench:deploy --link`: the bench re-runs itself in a private network
 * namespace whose loopback is shaped (testkit/shaped-link.ts, shared with the link tests).
 */
import { spawnSync } from 'node:child_process';
import { namespaceArgv, shapedLinkProblem } from '../testkit/shaped-link.ts';

export { loopbackUp, shapeLoopback } from '../testkit/shaped-link.ts';

/** Set in the re-run inside the namespace. */
export const IN_NAMESPACE_ENV = 'FERRY_BENCH_IN_NETNS';

/** `50mbit` -> the same text (tc's own syntax), anything else -> undefined. */
export function parseLinkRate(text: string): string | undefined {
  return /^\d+(\.\d+)?(kbit|mbit|gbit)$/i.test(text) && Number.parseFloat(text) > 0 ? text.toLowerCase() : undefined;
}

/** Why a shaped namespace cannot be made here (missing tool, not root), or undefined. */
export const linkProblem = shapedLinkProblem;

/** Runs this Node process's script again inside `unshare -n` (same flags and arguments); returns its exit code. */
export function enterShapedNamespace(scriptAndArgs: string[]): number {
  const [cmd, args] = namespaceArgv([process.execPath, ...process.execArgv, ...scriptAndArgs]);
  const r = spawnSync(cmd, args, { stdio: 'inherit', env: { ...process.env, [IN_NAMESPACE_ENV]: '1' } });
  return r.status ?? 1;
}
