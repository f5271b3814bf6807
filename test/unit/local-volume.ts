/**
 * Test-only support for the unit layer: a temp "remote" volume under a LocalHost, PATH and env
 * overrides around a call, fake tools first on PATH, and a small tmpfs to fill (root only).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { LocalHost } from '../../lib/hosts/local.ts';
import { remoteLayout, type RemoteLayout } from '../../lib/remote-layout.ts';

export interface TempVolume {
  root: string;
  host: LocalHost;
  layout: RemoteLayout;
  /** Remove everything (unmounting a tmpfs first). */
  dispose(): Promise<void>;
}

/** A LocalHost on a fresh temp root with the volume `/vol` (created) and the db dir `name`. */
export async function tempVolume(name = 'chroma_db'): Promise<TempVolume> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-unit-'));
  const host = new LocalHost(root);
  const volume = host.resolveVolume('/vol');
  await fs.mkdir(volume);
  return { root, host, layout: remoteLayout(volume, name), dispose: () => fs.rm(root, { recursive: true, force: true }) };
}

/** Run `fn` with these environment variables set (undefined removes one), then restore them. */
export async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(vars)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** A dir of executable sh scripts `{ name: body }`, to put first on PATH. */
export async function fakeTools(dir: string, tools: Record<string, string>): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  for (const [name, body] of Object.entries(tools)) {
    await fs.writeFile(path.join(dir, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  }
  return dir;
}

/** Absolute path of a tool on this machine's PATH. */
export function which(tool: string): string {
  return execFileSync('sh', ['-c', 'command -v "$1"', 'which', tool], { encoding: 'utf8' }).trim();
}

/**
 * Mount a tmpfs of `kib` KiB at `dir` (root only). Resolves to a reason string when it cannot
 * (not root, no mount permission): callers skip loudly, and fail under CI=true on a machine
 * where the suite runs as root.
 */
export async function mountTmpfs(dir: string, kib: number): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${kib}k`, 'tmpfs', dir], { stdio: 'pipe' });
    return undefined;
  } catch (e) {
    return `mount -t tmpfs failed: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`;
  }
}

export function unmount(dir: string): void {
  execFileSync('umount', [dir], { stdio: 'pipe' });
}

/** Fill the filesystem of `dir` until a write fails (ENOSPC). */
export async function fillUp(dir: string): Promise<void> {
  try {
    execFileSync('sh', ['-c', 'head -c 1073741824 /dev/zero > "$1"', 'fill', path.join(dir, 'filler')], { stdio: 'pipe' });
  } catch {
    // the expected end: no space left
  }
}

/** What the `mv` wrapper does at its Nth call (counting every mv of every script, across processes). */
export type MvFault = 'fail' | 'kill-before' | 'kill-after' | 'kill-launcher';

/**
 * A dir holding an `mv` that forwards to the real one but, at call number FERRY_TEST_MV_AT,
 * does FERRY_TEST_MV_DO: `fail` (exit 1, nothing moved), `kill-before` / `kill-after` (SIGKILL its
 * parent, the sh that called it, before / after the rename) or `kill-launcher` (SIGKILL its
 * parent's parent, then rename: the connection's process dies, the detached worker goes on).
 * Calls are counted in the file FERRY_TEST_MV_COUNT. Put the dir first on PATH with `mvFaultEnv`.
 */
export async function mvWrapperDir(dir: string): Promise<string> {
  const real = which('mv');
  return fakeTools(dir, {
    mv: `n=$(($(cat "$FERRY_TEST_MV_COUNT" 2>/dev/null || echo 0) + 1))
echo "$n" > "$FERRY_TEST_MV_COUNT"
if [ "$n" = "\${FERRY_TEST_MV_AT:-0}" ]; then
  case $FERRY_TEST_MV_DO in
    fail) echo "mv: injected failure" >&2; exit 1 ;;
    kill-before) kill -9 "$PPID"; exit 1 ;;
    kill-after) ${real} "$@"; kill -9 "$PPID"; exit 0 ;;
    kill-launcher) ( read -r st < "/proc/$PPID/stat"; st=\${st##*) }; set -- $st; kill -9 "$2" ) ;;
  esac
fi
exec ${real} "$@"`,
  });
}

/** The environment that puts the wrapper first on PATH with a fault at call `at`. */
export function mvFaultEnv(wrapperDir: string, countFile: string, at: number, fault: MvFault): Record<string, string> {
  return {
    PATH: `${wrapperDir}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    FERRY_TEST_MV_COUNT: countFile,
    FERRY_TEST_MV_AT: String(at),
    FERRY_TEST_MV_DO: fault,
  };
}
