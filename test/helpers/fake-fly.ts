/**
 * A strict fake `fly` (test/fixtures/fake-fly/fly, its contract in README.md there) whose
 * "machine" is this one: the volume is a local dir, the restart is the given command, `fly proxy`
 * forwards to the real server. Its state and every call it got are files in `dir`.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO, type DeployEnv } from './deploy-env.ts';

export const FAKE_DIR = path.join(REPO, 'test', 'fixtures', 'fake-fly');
export const FAKE = path.join(FAKE_DIR, 'fly');
export const APP = 'ferry-test';
export const MACHINE = '148e272a0e3d89';
export const TOKEN = 'fo1_FERRYTESTTOKEN_do-not-print-4f2a9c';

export interface FakeFly {
  dir: string;
  env: Record<string, string>;
  state(): Promise<any>;
  patch(fn: (s: any) => void): Promise<void>;
  calls(): Promise<string[][]>;
}

/** `chrootRoot`: the machine's file system is this root (`ssh console -C` runs through `chroot ROOT`). */
export async function makeFakeFly(env: Pick<DeployEnv, 'port' | 'restartCmd'>, o: { restartHook?: string; chrootRoot?: string } = {}): Promise<FakeFly> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-fakefly-'));
  const file = path.join(dir, 'state.json');
  const state = {
    app: APP, version: '0.4.87', authOk: true, token: TOKEN, chromaPort: env.port, internalPort: 8000,
    restartHook: o.restartHook ?? env.restartCmd,
    ...(o.chrootRoot ? { chrootRoot: o.chrootRoot } : {}),
    machines: [{ id: MACHINE, name: 'chroma-1', state: 'started', region: 'ams', private_ip: 'fdaa:0:1::2', checks: [{ name: 'servicecheck-00-http-8000', status: 'passing' }] }],
    volumes: [{ id: 'vol_ferrytest01', name: 'chroma_data', state: 'created', size_gb: 1, region: 'ams', attached_machine_id: MACHINE }],
    snapshots: {},
  };
  await fs.writeFile(file, JSON.stringify(state, null, 2));
  const read = async () => JSON.parse(await fs.readFile(file, 'utf8'));
  return {
    dir,
    env: { PATH: `${FAKE_DIR}:${process.env.PATH}`, FAKE_FLY_STATE: dir, FLY_ACCESS_TOKEN: TOKEN },
    state: read,
    async patch(fn) { const s = await read(); fn(s); await fs.writeFile(file, JSON.stringify(s, null, 2)); },
    async calls() {
      const text = await fs.readFile(path.join(dir, 'calls.jsonl'), 'utf8').catch(() => '');
      return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as string[]);
    },
  };
}
