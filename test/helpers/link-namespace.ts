/**
 * Tests over the emulated WAN link (testkit/shaped-link.ts): the test file re-runs itself, whole,
 * inside a private network namespace (`unshare -n`, root), where it brings `lo` up, builds its
 * playground (sshd, Chroma) and only then shapes `lo`. Outside, one test runs that re-run and
 * passes its verdict on. Without unshare/tc/ip or root: an error under CI=true, else a loud skip.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { namespaceArgv, shapedLinkProblem } from '../../testkit/shaped-link.ts';
import { REPO } from './deploy-env.ts';

const IN_NAMESPACE_ENV = 'FERRY_TEST_IN_NETNS';

/** This process is the re-run inside the namespace. */
export function inLinkNamespace(): boolean {
  return process.env[IN_NAMESPACE_ENV] === '1';
}

/**
 * Outside the namespace: one test that runs `file` again inside one and fails with its output
 * when it fails; its diagnostic lines matching `report` become this test's diagnostics.
 */
export async function reRunInLinkNamespace(title: string, file: string, report: RegExp): Promise<void> {
  const problem = await shapedLinkProblem();
  if (problem && process.env.CI === 'true') throw new Error(`${title}: needs ${problem}; CI runs as root with util-linux and iproute2`);
  if (problem) {
    process.stderr.write(`\n${'!'.repeat(78)}\n!!! WARNING: ${title} needs ${problem}.\n!!! It is SKIPPED on this machine.\n${'!'.repeat(78)}\n\n`);
  }
  describe(title, { skip: problem ? `needs ${problem}` : false }, () => {
    it('runs in a private network namespace whose lo is shaped', async (t) => {
      // Not a child of this test runner: its own reporter (TAP), not the runner's protocol.
      const env: Record<string, string | undefined> = { ...process.env, [IN_NAMESPACE_ENV]: '1' };
      delete env.NODE_TEST_CONTEXT;
      const [cmd, args] = namespaceArgv([process.execPath, '--import', 'tsx', '--test-reporter=tap', file]);
      const r = await execa(cmd, args, { cwd: REPO, env, extendEnv: false, reject: false, all: true, stdin: 'ignore', timeout: 900_000 });
      for (const line of String(r.all).split('\n')) if (report.test(line)) t.diagnostic(line.replace(/^\s*#\s*/, ''));
      assert.equal(r.exitCode, 0, `the run in the namespace failed (exit ${r.exitCode}):\n${r.all}`);
    });
  });
}
