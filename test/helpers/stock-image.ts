/**
 * A Chroma server started as the official `chromadb/chroma` 1.x image starts it on Fly.io: `chroma
 * run /config.yaml`, where the image's config says `persist_path: "/data"`, with the app's
 * fly.toml `[env]` in its environment (CHROMA_* variables override the config) and the fly.toml
 * `[mounts]` volume standing at a directory of this machine. Paths under the mount destination in
 * the config and in `[env]` are mapped onto that directory; nothing else is changed, except the
 * network: the test's server listens on 127.0.0.1 and a free port instead of 0.0.0.0:8000.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { execa } from 'execa';
import { shQuote } from '../../lib/remote/shell.ts';
import { chromaCliPath, freePort } from '../../lib/chroma/server.ts';
import { REPO, waitHeartbeat } from './deploy-env.ts';

/** The image's /config.yaml (rust/frontend/sample_configs/docker_single_node.yaml of Chroma 1.x). */
export const IMAGE_CONFIG = { persist_path: '/data' };
export const RESTART_SCRIPT = path.join(REPO, 'test', 'fixtures', 'stock-image', 'restart.sh');
/** The [env] the repo's fly.toml had before it set CHROMA_PERSIST_PATH (Chroma 0.x settings). */
export const OLD_FLY_ENV = { IS_PERSISTENT: 'TRUE', PERSIST_DIRECTORY: '/data/chroma_db', ANONYMIZED_TELEMETRY: 'FALSE' };

export interface FlyApp {
  env: Record<string, string>;
  /** [mounts] destination, e.g. /data */
  mount: string;
}

/** The `[env]` and `[mounts] destination` of a fly.toml. */
export async function readFlyApp(file = path.join(REPO, 'fly.toml')): Promise<FlyApp> {
  const doc = parseToml(await fs.readFile(file, 'utf8')) as { env?: Record<string, unknown>; mounts?: { destination?: unknown } };
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(doc.env ?? {})) env[k] = String(v);
  const mount = doc.mounts?.destination;
  if (typeof mount !== 'string' || !mount.startsWith('/')) throw new Error(`${file}: [mounts] destination is missing`);
  return { env, mount };
}

/** `value` with a leading `mount` (the whole value or `mount/...`) replaced by `onDisk`. */
export function mapMount(value: string, mount: string, onDisk: string): string {
  if (value === mount) return onDisk;
  if (value.startsWith(`${mount}/`)) return path.join(onDisk, value.slice(mount.length + 1));
  return value;
}

export interface ImageServer {
  url: string;
  port: number;
  /** The volume's directory on this machine (the mount destination's stand-in). */
  volumeOnDisk: string;
  /** A `--restart-cmd` that restarts this server the same way (config file, same environment). */
  restartCmd: string;
  /** The server's pid now (changes with each restart). */
  pid(): Promise<number>;
  log(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Start Chroma as the image would, with `env` as the app's [env] (default: the repo's fly.toml),
 * the volume at `volumeOnDisk`; `dir` holds the config, pid file and log (outside the volume).
 */
export async function startAsImage(o: { dir: string; volumeOnDisk: string; env?: Record<string, string>; mount?: string }): Promise<ImageServer> {
  const app = await readFlyApp();
  const mount = o.mount ?? app.mount;
  const env = o.env ?? app.env;
  const port = await freePort();
  const config = path.join(o.dir, 'config.yaml');
  const pidFile = path.join(o.dir, 'chroma.pid');
  const logFile = path.join(o.dir, 'chroma.log');
  await fs.mkdir(o.volumeOnDisk, { recursive: true });
  await fs.writeFile(config, [
    `persist_path: ${JSON.stringify(mapMount(IMAGE_CONFIG.persist_path, mount, o.volumeOnDisk))}`,
    '# the test network only (the image listens on 0.0.0.0:8000)',
    'listen_address: "127.0.0.1"',
    `port: ${port}`,
    '',
  ].join('\n'));
  const vars = Object.entries(env).map(([k, v]) => `${k}=${mapMount(v, mount, o.volumeOnDisk)}`);
  const restartCmd = ['env', '-i', `PATH=${process.env.PATH ?? '/usr/bin:/bin'}`, 'RUST_BACKTRACE=0', ...vars,
    'sh', RESTART_SCRIPT, pidFile, config, logFile, process.execPath, chromaCliPath()].map(shQuote).join(' ');
  await execa('sh', ['-c', restartCmd]);
  const url = `http://127.0.0.1:${port}`;
  const log = () => fs.readFile(logFile, 'utf8').catch(() => '');
  try {
    await waitHeartbeat(url, 30_000);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${(await log()).split('\n').slice(-10).join('\n')}`);
  }
  const pid = async () => Number((await fs.readFile(pidFile, 'utf8')).trim());
  return {
    url, port, volumeOnDisk: o.volumeOnDisk, restartCmd, pid, log,
    async stop() {
      const p = await pid().catch(() => 0);
      if (!p) return;
      try { process.kill(p, 'SIGTERM'); } catch { return; }
      // Cleanup only: give it 10 s to exit before the caller removes its files.
      for (let i = 0; i < 100; i++) {
        try { process.kill(p, 0); } catch { return; }
        await new Promise((r) => setTimeout(r, 100));
      }
      try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
    },
  };
}

/** Whether process `pid` holds `file` open (same device and inode, through /proc/PID/fd). */
export async function holdsOpen(pid: number, file: string): Promise<boolean> {
  const want = await fs.stat(file);
  for (const fd of await fs.readdir(`/proc/${pid}/fd`)) {
    const st = await fs.stat(`/proc/${pid}/fd/${fd}`).catch(() => undefined);
    if (st && st.ino === want.ino && st.dev === want.dev) return true;
  }
  return false;
}
