/**
 * An app that embeds Chroma, running INSIDE a Debian root (test/helpers/debian-root.ts) as it
 * would on the far side: test/fixtures/embedded-app/app.py on the `python` profile, app.pl (perl,
 * no SQLite reader) on the `stock` one. It opens VOLUME/NAME/chroma.sqlite3 at start, keeps it
 * open and serves GET /health on 127.0.0.1:PORT. Its restart command (for `--restart-cmd`, run
 * inside the root) stops the running app, waits until it is gone and starts a new one detached.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { freePort } from '../../lib/chroma/server.ts';
import { shQuote } from '../../lib/remote/shell.ts';
import type { DebianRoot } from './debian-root.ts';
import { REPO } from './deploy-env.ts';

export interface EmbeddedApp {
  port: number;
  /** The app's health URL (what `--app-health-url` gets). */
  healthUrl: string;
  /** Stop the running app and start it again, detached (run inside the root). */
  restartCmd: string;
  /** The pid the running app wrote (a pid of this machine: no pid namespace). */
  pid(): Promise<number | undefined>;
  /** GET /health: the status and, from the python app, the collections it serves. */
  health(): Promise<{ status: number; collections?: string[] } | null>;
  /** Run the restart command inside the root and wait for /health to answer 200. */
  start(timeoutMs?: number): Promise<void>;
  /** The app's own log (why it refused data). */
  log(): Promise<string>;
  /** Stop the app and remove its dir from the root. */
  remove(): Promise<void>;
}

/** `db`: the live chroma.sqlite3 as the root sees it; `requireCollection`: data without it is refused at start (python app). */
export async function installEmbeddedApp(root: DebianRoot, o: { db: string; requireCollection?: string }): Promise<EmbeddedApp> {
  const onDisk = await fs.mkdtemp(path.join(root.path, 'opt', 'ferry-app-'));
  await fs.chmod(onDisk, 0o755);
  const dir = `/opt/${path.basename(onDisk)}`;
  const python = root.profile === 'python';
  const file = python ? 'app.py' : 'app.pl';
  await fs.copyFile(path.join(REPO, 'test', 'fixtures', 'embedded-app', file), path.join(onDisk, file));
  const port = await freePort();
  const argv = [python ? 'python3' : 'perl', `${dir}/${file}`, '--db', o.db, '--port', String(port), '--pid-file', `${dir}/app.pid`,
    ...(o.requireCollection && python ? ['--require-collection', o.requireCollection] : [])];
  // Gone means no /proc entry or a zombie (this machine's init does not reap orphans at once).
  const restartCmd = [
    `d=${shQuote(dir)}`,
    'if [ -s "$d/app.pid" ]; then p=$(cat "$d/app.pid"); kill "$p" 2>/dev/null; i=0; '
      + 'while [ -d "/proc/$p" ] && ! grep -q "^State:.*Z" "/proc/$p/status" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done; fi',
    `setsid ${argv.map(shQuote).join(' ')} >>"$d/app.log" 2>&1 </dev/null &`,
  ].join('\n');
  const healthUrl = `http://127.0.0.1:${port}/health`;
  const readPid = async () => {
    const n = Number((await fs.readFile(path.join(onDisk, 'app.pid'), 'utf8').catch(() => '')).trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  };
  const health = async () => {
    try {
      const r = await fetch(healthUrl, { signal: AbortSignal.timeout(2000) });
      const text = await r.text();
      let collections: string[] | undefined;
      try { collections = (JSON.parse(text) as { collections?: string[] }).collections; } catch { /* the perl app says ok */ }
      return { status: r.status, collections };
    } catch {
      return null;
    }
  };
  return {
    port,
    healthUrl,
    restartCmd,
    pid: readPid,
    health,
    async start(timeoutMs = 15_000) {
      const r = await root.run(restartCmd);
      if (r.code !== 0) throw new Error(`starting the app failed: ${r.stderr}`);
      const end = Date.now() + timeoutMs;
      while ((await health())?.status !== 200) {
        if (Date.now() > end) throw new Error(`the app did not answer 200 at ${healthUrl}: ${await fs.readFile(path.join(onDisk, 'app.log'), 'utf8').catch(() => '')}`);
        await new Promise((res) => setTimeout(res, 100));
      }
    },
    log: () => fs.readFile(path.join(onDisk, 'app.log'), 'utf8').catch(() => ''),
    async remove() {
      const pid = await readPid();
      if (pid) {
        try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
      }
      await fs.rm(onDisk, { recursive: true, force: true });
    },
  };
}
