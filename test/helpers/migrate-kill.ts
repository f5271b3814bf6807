import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { CLI, TEST_STATE_DIR } from './deploy-env.ts';

/** Import batches the checkpoint in `checkpointDir` records as written (in order and out of order). */
export async function checkpointBatchesDone(checkpointDir: string): Promise<number> {
  try {
    const c = JSON.parse(await fs.readFile(path.join(checkpointDir, 'migrate-checkpoint.json'), 'utf8'));
    return Object.values(c.targets as Record<string, { batchesDone: number; doneAbove?: number[] }>).reduce((n, t) => n + t.batchesDone + (t.doneAbove?.length ?? 0), 0);
  } catch {
    return 0;
  }
}

/**
 * Run `chroma-ferry ...args` (a migrate writing its checkpoint to `checkpointDir`) and SIGKILL it
 * once at least `afterBatches` import batches are checkpointed; resolves with the batches recorded then.
 */
export async function migrateKilledMidImport(args: string[], checkpointDir: string, afterBatches: number, env: Record<string, string> = {}): Promise<number> {
  const child = execa(process.execPath, [CLI, ...args], { reject: false, stdin: 'ignore', env: { CI: 'true', CHROMA_FERRY_STATE_DIR: TEST_STATE_DIR, ...env } });
  const end = Date.now() + 60_000;
  while ((await checkpointBatchesDone(checkpointDir)) < afterBatches) {
    assert.ok(Date.now() < end, 'import started');
    await new Promise((r) => setTimeout(r, 5));
  }
  child.kill('SIGKILL');
  await child;
  return checkpointBatchesDone(checkpointDir);
}
