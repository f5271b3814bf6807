/** The human runbooks list the same steps, in the same order, as the code that runs them. */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { it } from 'node:test';
import { DEPLOY_STEP_OBJECTS } from '../runbooks/deploy/index.ts';
import { ROLLBACK_STEPS } from '../runbooks/rollback/index.ts';
import { REPO } from './helpers/deploy-env.ts';

async function documentedSteps(file: string): Promise<string[]> {
  const text = await fs.readFile(path.join(REPO, 'runbooks', file), 'utf8');
  const section = text.split(/^## Steps$/m)[1]?.split(/^## /m)[0] ?? '';
  return [...section.matchAll(/^\d+\. \*\*([a-z-]+)\*\*/gm)].map((m) => m[1]!);
}

it('runbooks/deploy/README.md lists the deploy steps of the code', async () => {
  assert.deepEqual(await documentedSteps('deploy/README.md'), DEPLOY_STEP_OBJECTS.map((s) => s.name));
});

it('runbooks/rollback/README.md lists the rollback steps of the code', async () => {
  assert.deepEqual(await documentedSteps('rollback/README.md'), ROLLBACK_STEPS.map((s) => s.name));
});
