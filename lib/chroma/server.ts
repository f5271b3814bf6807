import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitForHeartbeat } from './http.ts';

/** Absolute path of the chromadb package's CLI (`dist/cli.mjs`), which embeds the real Chroma server. */
export function chromaCliPath(): string {
  // chromadb's "exports" has no "./package.json"; resolve the main entry (dist/chromadb.mjs) instead.
  const entry = fileURLToPath(import.meta.resolve('chromadb'));
  const cli = path.join(path.dirname(entry), 'cli.mjs');
  if (!fs.existsSync(cli)) throw new Error(`chromadb CLI not found at ${cli}`);
  return cli;
}

export interface ChromaServer {
  url: string;
  port: number;
  path: string;
  pid: number;
  stop(): Promise<void>;
}

export interface StartChromaOptions {
  path: string;
  /** 0 or undefined: pick a free port. */
  port?: number;
  /** Append the server's output here; otherwise it is kept in memory (for error messages). */
  logFile?: string;
  /** How long to wait for the heartbeat (default 30000). */
  timeoutMs?: number;
}

/** A free TCP port on 127.0.0.1 (listen on port 0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('could not get a free port'))));
    });
  });
}

/** Whether nothing listens on 127.0.0.1:`port` (we can bind it ourselves). */
async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function killOnExit(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of live) {
      try { c.kill('SIGKILL'); } catch { /* already gone */ }
    }
  });
}

/** Start `chroma run` on `opts.path`, bound to 127.0.0.1; resolves once the heartbeat answers. */
export async function startChromaServer(opts: StartChromaOptions): Promise<ChromaServer> {
  const autoPort = !opts.port;
  for (let attempt = 1; ; attempt++) {
    const port = opts.port || (await freePort());
    try {
      return await startOnce(opts, port);
    } catch (e) {
      // Another process may grab an auto-picked port between freePort() and the bind: try again.
      if (autoPort && attempt < 3 && e instanceof PortTakenError) continue;
      throw e;
    }
  }
}

class PortTakenError extends Error {}

async function startOnce(opts: StartChromaOptions, port: number): Promise<ChromaServer> {
  const dataPath = path.resolve(opts.path);
  const url = `http://127.0.0.1:${port}`;
  // Otherwise the heartbeat of whatever already listens there would pass for ours.
  if (!(await portIsFree(port))) throw new PortTakenError(`cannot start Chroma for ${dataPath}: 127.0.0.1:${port} is already in use`);
  const argv = [chromaCliPath(), 'run', '--path', dataPath, '--host', '127.0.0.1', '--port', String(port)];

  let logFd: number | undefined;
  let memLog = '';
  if (opts.logFile) logFd = fs.openSync(opts.logFile, 'a');
  const child = spawn(process.execPath, argv, {
    stdio: ['ignore', logFd ?? 'pipe', logFd ?? 'pipe'],
    // RUST_BACKTRACE=0: a panic shows its message, not a 30-line backtrace, in the log tail.
    env: { ...process.env, ANONYMIZED_TELEMETRY: 'False', RUST_BACKTRACE: '0' },
  });
  if (logFd !== undefined) fs.closeSync(logFd);
  const keep = (b: Buffer) => { memLog = (memLog + b.toString('utf8')).slice(-8192); };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  killOnExit(child);

  const logTail = (): string => {
    let text = memLog;
    if (opts.logFile) {
      try { text = fs.readFileSync(opts.logFile, 'utf8').slice(-8192); } catch { /* none */ }
    }
    return text.trim().split('\n').slice(-10).join('\n');
  };

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));

  const ac = new AbortController();
  const timeoutMs = opts.timeoutMs ?? 30000;
  const ready = waitForHeartbeat(url, { timeoutMs, intervalMs: 200, signal: ac.signal });
  const outcome = await Promise.race([
    ready.then(() => ({ kind: 'ready' as const }), (err: unknown) => ({ kind: 'timeout' as const, err })),
    exited.then((x) => ({ kind: 'exited' as const, ...x })),
    spawnError.then((err) => ({ kind: 'error' as const, err })),
  ]);
  ac.abort();
  ready.catch(() => undefined);

  if (outcome.kind !== 'ready') {
    child.kill('SIGKILL');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    const tail = logTail();
    const where = `Chroma server on ${url} for ${dataPath}`;
    let msg: string;
    if (outcome.kind === 'exited') {
      msg = `${where} exited before answering (${outcome.signal ? `signal ${outcome.signal}` : `exit ${outcome.code}`})`;
    } else if (outcome.kind === 'error') {
      msg = `${where} failed to start: ${outcome.err.message}`;
    } else {
      msg = `${where} did not answer its heartbeat within ${timeoutMs} ms`;
    }
    const full = `${msg}${tail ? `\n--- server log (tail) ---\n${tail}` : ''}`;
    if (outcome.kind === 'exited' && /Address .* is not available|Address already in use/i.test(tail)) {
      throw new PortTakenError(full);
    }
    throw new Error(full);
  }

  // Once running, the output is no longer needed in memory unless it goes to a file.
  let stopped: Promise<void> | undefined;
  return {
    url,
    port,
    path: dataPath,
    pid: child.pid!,
    stop(): Promise<void> {
      stopped ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(killer);
      })();
      return stopped;
    },
  };
}
