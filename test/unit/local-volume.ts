/**
 * Test-only support for the unit layer: a temp "remote" volume under a LocalHost, PATH and env
 * overrides around a call, fake tools first on PATH, a small tmpfs to fill (root only), and the
 * rejection a test expects.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { execChecked } from '../../lib/hosts/exec.ts';
import { LocalHost } from '../../lib/hosts/local.ts';
import type { RunOptions, RunResult } from '../../lib/hosts/remote-host.ts';
import { shArgv, type RemoteScript } from '../../lib/remote/shell.ts';
import { remoteLayout, type RemoteLayout } from '../../lib/remote/layout.ts';

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

/**
 * A LocalHost whose every script leads its own session and process group, like the shell of an
 * ssh session: killing that group is what a dropped connection does to everything it started.
 */
export class OwnSessionHost extends LocalHost {
  override async run(script: RemoteScript, opts: RunOptions = {}): Promise<RunResult> {
    const r = await execChecked(['setsid', ...shArgv(script)], { what: script.title, stdin: opts.stdin, signal: opts.signal, env: { FERRY_TEST_OWN_SESSION: '1' } });
    return { stdout: r.stdout, stderr: r.stderr };
  }
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
export async function mountTmpfs(dir: string, kib: number, o: { inodes?: number } = {}): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${kib}k${o.inodes ? `,nr_inodes=${o.inodes}` : ''}`, 'tmpfs', dir], { stdio: 'pipe' });
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

/** What the `mv` wrapper does at its Nth call. */
export type MvFault = 'fail' | 'kill-before' | 'kill-after' | 'kill-session';

/**
 * A dir holding an `mv` that forwards to the real one. When one of its arguments lies under
 * `ROOT/vol/` and `ROOT/mv-fault` exists (see `injectMvFault`), it counts its calls in
 * `ROOT/mv-count` and at call number AT does FAULT: `fail` (exit 1, nothing moved),
 * `kill-before` / `kill-after` (SIGKILL its parent, the sh that called it, before / after the
 * rename) or `kill-session` (SIGKILL every process of the session of its parent's parent, the script
 * run over the "connection" by OwnSessionHost, then rename: only a worker detached into a session
 * of its own goes on). Faults are per temp volume, so volumes may run side by side.
 */
export async function mvWrapperDir(dir: string): Promise<string> {
  const real = which('mv');
  return fakeTools(dir, {
    mv: `root=""
for a in "$@"; do case $a in */vol/*) root=\${a%%/vol/*}; break ;; esac; done
if [ -n "$root" ] && [ -f "$root/mv-fault" ]; then
  read -r at fault < "$root/mv-fault"
  n=0; [ -f "$root/mv-count" ] && read -r n < "$root/mv-count"
  n=$((n + 1)); echo "$n" > "$root/mv-count"
  if [ "$n" = "$at" ]; then
    case $fault in
      fail) echo "mv: injected failure" >&2; exit 1 ;;
      kill-before) kill -9 "$PPID"; exit 1 ;;
      kill-after) ${real} "$@"; kill -9 "$PPID"; exit 0 ;;
      kill-session) (
        read -r st < "/proc/$PPID/stat"; st=\${st##*) }; set -- $st; launcher=$2
        read -r st < "/proc/$launcher/stat"; st=\${st##*) }; set -- $st
        # the process group leading the session the launcher runs in (made by OwnSessionHost), else the launcher alone
        if [ "\${FERRY_TEST_OWN_SESSION:-}" = 1 ]; then kill -9 "-$4"; else kill -9 "$launcher"; fi
      ) ;;
    esac
  fi
fi
exec ${real} "$@"`,
  });
}

/** Arm the wrapper for the volume of `v`: fault `fault` at mv call `at` (counted from now). */
export async function injectMvFault(v: TempVolume, at: number, fault: MvFault): Promise<void> {
  await fs.rm(path.join(v.root, 'mv-count'), { force: true });
  await fs.writeFile(path.join(v.root, 'mv-fault'), `${at} ${fault}\n`);
}

/** Disarm it. */
export async function clearMvFault(v: TempVolume): Promise<void> {
  await fs.rm(path.join(v.root, 'mv-fault'), { force: true });
}

/**
 * For the tests of the calling `describe`: the mv wrapper (mvWrapperDir) first on PATH, put there
 * before they run and PATH restored after them (before/after hooks of that describe).
 */
export function withMvWrapperOnPath(): void {
  let tools: TempVolume | undefined;
  const savedPath = process.env.PATH;
  before(async () => {
    tools = await tempVolume();
    process.env.PATH = `${await mvWrapperDir(path.join(tools.root, 'bin'))}:${savedPath}`;
  });
  after(async () => {
    process.env.PATH = savedPath;
    await tools?.dispose();
  });
}

/** What `p` rejects with (a test that expects a rejection fails when it resolves). */
export async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  return assert.fail('expected a rejection');
}
