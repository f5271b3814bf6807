/**
 * The emulated WAN link of `bench:deploy --link`: a private network namespace (`unshare -n`)
 * whose loopback is shaped by a token bucket (`tc ... tbf`; netem is not available on these
 * kernels). Bench-only.
 */
import { spawnSync } from 'node:child_process';
import { execa } from 'execa';

/** Set in the re-run inside the namespace. */
export const IN_NAMESPACE_ENV = 'FERRY_BENCH_IN_NETNS';

/** `50mbit` -> the same text (tc's own syntax), anything else -> undefined. */
export function parseLinkRate(text: string): string | undefined {
  return /^\d+(\.\d+)?(kbit|mbit|gbit)$/i.test(text) && Number.parseFloat(text) > 0 ? text.toLowerCase() : undefined;
}

/** Why a shaped namespace cannot be made here (missing tool, not root), or undefined. */
export async function linkProblem(): Promise<string | undefined> {
  for (const tool of ['unshare', 'tc', 'ip']) {
    const r = await execa('sh', ['-c', `command -v ${tool}`], { reject: false });
    if (r.exitCode !== 0) return `\`${tool}\` (${tool === 'unshare' ? 'util-linux' : 'iproute2'}), which is not installed`;
  }
  const r = await execa('unshare', ['-n', 'true'], { reject: false });
  if (r.exitCode !== 0) return `a private network namespace, which \`unshare -n true\` cannot make here (${(r.stderr || `exit ${r.exitCode}`).trim().split('\n')[0]}; run as root)`;
  return undefined;
}

/** Runs this Node process's script again inside `unshare -n` (same flags and arguments); returns its exit code. */
export function enterShapedNamespace(scriptAndArgs: string[]): number {
  const r = spawnSync('unshare', ['-n', '--', process.execPath, ...process.execArgv, ...scriptAndArgs], {
    stdio: 'inherit',
    env: { ...process.env, [IN_NAMESPACE_ENV]: '1' },
  });
  return r.status ?? 1;
}

/** Brings the namespace's `lo` up, unshaped (the loopback figures are taken first). */
export async function loopbackUp(): Promise<void> {
  await execa('ip', ['link', 'set', 'lo', 'up']);
}

/** MTU 1500 and `tbf rate RATE burst 256kb latency 100ms` on lo. */
export async function shapeLoopback(rate: string): Promise<void> {
  await execa('ip', ['link', 'set', 'lo', 'mtu', '1500']);
  await execa('tc', ['qdisc', 'add', 'dev', 'lo', 'root', 'tbf', 'rate', rate, 'burst', '256kb', 'latency', '100ms']);
}
