/**
 * The setup the swap-fault and step-kill tests share, registered in the calling describe's hooks
 * (as far-side.ts does for the Debian-root tests): `chroma-ferry` on PATH for the hints they run
 * as printed (a shim, made in `before`, removed in `after`) and, before each test, a fresh local
 * playground (test/helpers/deploy-env.ts: a Chroma server on the old data, the source to deploy)
 * with its `local:` target, the file lists of the old and the new data and the content served
 * before anything ran; stopped after each test.
 */
import path from 'node:path';
import { after, afterEach, before, beforeEach } from 'node:test';
import { servedContentDigest } from '../../testkit/content-digest.ts';
import { listFiles } from '../../testkit/tree-digest.ts';
import { makeDeployEnv, TEST_STATE_DIR, type DeployEnv } from './deploy-env.ts';
import { chromaFerryShim } from './step-kill-volume.ts';

export interface Playground {
  env: DeployEnv;
  /** `local:ROOT/target` (the volume is `/data` in it). */
  target: string;
  /** The files of the live (old) data and of the source (new data), before anything ran. */
  oldFiles: string[];
  newFiles: string[];
  /** What the server served before anything ran. */
  oldContent: string;
}

export interface CliEnv extends Record<string, string> {
  CI: string;
  CHROMA_FERRY_STATE_DIR: string;
  PATH: string;
}

export interface FaultPlayground {
  /** This test's playground (set before each test). */
  readonly current: Playground;
  /** The env a user's shell has: CI, the tests' state dir, PATH with `first` dirs, then `chroma-ferry`. */
  cliEnv(...first: string[]): CliEnv;
}

export function faultPlayground(): FaultPlayground {
  let shim: Awaited<ReturnType<typeof chromaFerryShim>> | undefined;
  let current: Playground | undefined;
  before(async () => { shim = await chromaFerryShim(); });
  beforeEach(async () => {
    const env = await makeDeployEnv();
    try {
      current = {
        env, target: `local:${path.join(env.root, 'target')}`,
        oldFiles: await listFiles(env.live), newFiles: await listFiles(env.source), oldContent: await servedContentDigest(env.url),
      };
    } catch (e) {
      await env.stop();
      throw e;
    }
  });
  afterEach(async () => {
    await current?.env.stop();
    current = undefined;
  });
  after(async () => { await shim?.dispose(); });
  return {
    get current() {
      if (!current) throw new Error('no playground outside a test');
      return current;
    },
    cliEnv: (...first) => ({ CI: 'true', CHROMA_FERRY_STATE_DIR: TEST_STATE_DIR, PATH: [...first, shim!.dir, process.env.PATH].join(':') }),
  };
}
