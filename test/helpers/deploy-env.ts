/**
 * A deploy playground on this machine: a source database, a "production" volume holding older
 * data served by a real Chroma server, the restart command for it, and a way to run the CLI as a
 * user would (a child process, no TTY, CI=true).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { localChromaRestartCommand } from '../../testkit/restart-command.ts';
import { buildSampleDb, type SampleCollectionSpec } from '../../testkit/sample-db.ts';
import { freePort, startChromaServer } from '../../lib/chroma/server.ts';
import { servedContentDigest } from '../../testkit/content-digest.ts';
import { digestTree } from '../../testkit/tree-digest.ts';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(REPO, 'bin', 'chroma-ferry.js');

const built = new Map<string, Promise<string>>();

/** Build a sample db once per process and per spec; callers get their own copy. */
export async function sampleDbCopy(dest: string, spec: SampleCollectionSpec[], seed = 1): Promise<void> {
  const key = JSON.stringify({ spec, seed });
  if (!built.has(key)) {
    built.set(key, (async () => {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-sample-'));
      await buildSampleDb(dir, spec, { seed });
      return dir;
    })());
  }
  const src = await built.get(key)!;
  await fs.cp(src, dest, { recursive: true, preserveTimestamps: true });
}

export const SOURCE_SPEC: SampleCollectionSpec[] = [
  { name: 'books', count: 300, dim: 32, space: 'cosine' },
  { name: 'laws', count: 150, dim: 32, space: 'l2' },
];
export const OLD_SPEC: SampleCollectionSpec[] = [{ name: 'legacy', count: 40, dim: 16, space: 'l2' }];

export interface DeployEnv {
  root: string;
  source: string;
  /** The path the deploy writes into, on this machine (for local: it is under volumeRoot). */
  volumeOnDisk: string;
  live: string;
  port: number;
  url: string;
  pidFile: string;
  restartCmd: string;
  stop(): Promise<void>;
}

/**
 * `volumeOnDisk` is where the volume is on this machine. For `local:` targets pass
 * `{ volumeRoot, volume }` so that volumeOnDisk = volumeRoot + volume.
 */
export async function makeDeployEnv(o: { volumeOnDisk?: (root: string) => string; dbDir?: string; source?: SampleCollectionSpec[] } = {}): Promise<DeployEnv> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-env-'));
  const source = path.join(root, 'source db');
  await sampleDbCopy(source, o.source ?? SOURCE_SPEC, 11);
  const volumeOnDisk = o.volumeOnDisk ? o.volumeOnDisk(root) : path.join(root, 'target', 'data');
  const live = path.join(volumeOnDisk, o.dbDir ?? 'chroma_db');
  await fs.mkdir(volumeOnDisk, { recursive: true });
  await sampleDbCopy(live, OLD_SPEC, 3);
  const port = await freePort();
  const pidFile = path.join(root, 'prod.pid');
  const restartCmd = localChromaRestartCommand({ pidFile, port, dataDir: live, logFile: path.join(root, 'prod.log') });
  await execa('sh', ['-c', restartCmd]);
  const url = `http://127.0.0.1:${port}`;
  await waitHeartbeat(url, 30_000);
  return {
    root, source, volumeOnDisk, live, port, url, pidFile, restartCmd,
    async stop() {
      const pid = Number(await fs.readFile(pidFile, 'utf8').catch(() => ''));
      if (pid) {
        try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
      }
      await fs.rm(root, { recursive: true, force: true }).catch(() => undefined);
    },
  };
}

export async function waitHeartbeat(url: string, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await fetch(`${url}/api/v2/heartbeat`);
      if (r.ok) return;
    } catch { /* not yet */ }
    if (Date.now() > end) throw new Error(`no heartbeat from ${url}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  json?: any;
}

/** Local runbook state of the CLI runs of this test process (never the user's ~/.local/state). */
export const TEST_STATE_DIR = path.join(os.tmpdir(), `ferry-test-state-${process.pid}`);
process.env.CHROMA_FERRY_STATE_DIR = TEST_STATE_DIR; // also for runbooks run in-process

/** Run the CLI as a child process without a terminal, CI=true. */
export async function runCli(args: string[], o: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  const r = await execa(process.execPath, [CLI, ...args], {
    reject: false, stdin: 'ignore', env: { CI: 'true', CHROMA_FERRY_STATE_DIR: TEST_STATE_DIR, ...o.env }, timeout: o.timeoutMs ?? 240_000,
  });
  const out: CliResult = { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  if (args.includes('--json')) {
    try { out.json = JSON.parse(out.stdout); } catch { /* not JSON: the test will say */ }
  }
  return out;
}

/** A refusal: exit 2 and exactly one line on stderr, matching `pattern`, no stack. */
export function assertOneLineRefusal(r: CliResult, pattern: RegExp): void {
  assert.equal(r.code, 2, `exit ${r.code}\n${r.stderr}${r.stdout}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

export function deployArgs(env: DeployEnv, target: string, volume: string, extra: string[] = []): string[] {
  return [
    'deploy', '--source', env.source, '--target', target, '--volume', volume,
    '--restart-cmd', env.restartCmd, '--health-url', env.url, '--health-timeout', '30s', '--yes', '--json', ...extra,
  ];
}

export { digestTree };


/** What a server started on a copy of `dir` serves (the copy is thrown away; `dir` is never opened). */
export async function contentDigestOfDir(dir: string): Promise<string> {
  const copy = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-digest-'));
  await fs.cp(dir, copy, { recursive: true });
  const server = await startChromaServer({ path: copy });
  try {
    return await servedContentDigest(server.url);
  } finally {
    await server.stop();
    await fs.rm(copy, { recursive: true, force: true });
  }
}
