/**
 * A fresh deploy playground (test/helpers/deploy-env.ts: a Chroma server on the old data, the
 * source to deploy) before each test of the calling describe, with its `local:` target,
 * registered in the describe's hooks (as fault-playground.ts does): each `beforeEach` stops the
 * previous test's playground and makes a new one; the last is stopped in `after`.
 */
import path from 'node:path';
import { after, beforeEach } from 'node:test';
import { listCollectionCounts } from '../../lib/chroma/http.ts';
import { makeDeployEnv, type DeployEnv } from './deploy-env.ts';

export interface LocalDeployEnv {
  /** This test's playground (set before each test). */
  readonly env: DeployEnv;
  /** `local:ROOT/target` (the volume is `/data` in it). */
  readonly target: string;
  /** [name, count] of each collection the playground's server serves. */
  served(): Promise<(string | number)[][]>;
}

export function localDeployEnvPerTest(): LocalDeployEnv {
  let env: DeployEnv;
  let target: string;
  beforeEach(async () => {
    await env?.stop();
    env = await makeDeployEnv();
    target = `local:${path.join(env.root, 'target')}`;
  });
  after(async () => env?.stop());
  return {
    get env() { return env; },
    get target() { return target; },
    served: async () => (await listCollectionCounts(env.url)).map((c) => [c.name, c.count]),
  };
}
