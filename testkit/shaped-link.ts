/**
 * An emulated WAN link on this machine: a private network namespace (`unshare -n`, root) whose
 * loopback is brought up and shaped by a token bucket (`tc ... tbf`; netem is not available on
 * these kernels). A process re-runs itself in the namespace (`namespaceArgv`), where sshd, Chroma
 * and the CLI then talk over the shaped `lo`. Used by `bench:deploy --link` and the link tests;
 * everything must be installed beforehand (no network in there).
 */
import { execa } from 'execa';

/** Why a shaped namespace cannot be made here (missing tool, not root), or undefined. */
export async function shapedLinkProblem(): Promise<string | undefined> {
  for (const tool of ['unshare', 'tc', 'ip']) {
    const r = await execa('sh', ['-c', `command -v ${tool}`], { reject: false });
    if (r.exitCode !== 0) return `\`${tool}\` (${tool === 'unshare' ? 'util-linux' : 'iproute2'}), which is not installed`;
  }
  const r = await execa('unshare', ['-n', 'true'], { reject: false });
  if (r.exitCode !== 0) return `a private network namespace, which \`unshare -n true\` cannot make here (${(r.stderr || `exit ${r.exitCode}`).trim().split('\n')[0]}; run as root)`;
  return undefined;
}

/** The command line that runs `argv` in a new private network namespace (its `lo` down). */
export function namespaceArgv(argv: string[]): [string, string[]] {
  return ['unshare', ['-n', '--', ...argv]];
}

/** Brings the namespace's `lo` up, unshaped. */
export async function loopbackUp(): Promise<void> {
  await execa('ip', ['link', 'set', 'lo', 'up']);
}

/** MTU 1500 and `tbf rate RATE burst 256kb latency 100ms` on lo (RATE in tc's syntax, e.g. 50mbit). */
export async function shapeLoopback(rate: string): Promise<void> {
  await execa('ip', ['link', 'set', 'lo', 'mtu', '1500']);
  await execa('tc', ['qdisc', 'add', 'dev', 'lo', 'root', 'tbf', 'rate', rate, 'burst', '256kb', 'latency', '100ms']);
}
