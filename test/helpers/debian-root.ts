/**
 * A real Debian root file system standing in for the far side of a deploy, built with
 * `debootstrap --variant=minbase` from the mirror in this machine's apt sources, one per profile:
 *
 * - `stock`:  what the official Chroma image holds (debian:stable-slim + ca-certificates): sh, bash,
 *             tar, gzip, coreutils, findutils, perl, openssl; no curl, wget or python3;
 * - `python`: a Python app image (python:3.x-slim): the same plus python3; no curl or wget.
 *
 * Built once per checkout into `.cache/debian-roots/<profile>-<suite>` (git-ignored; ~45 s and
 * ~130 MB each; the .debs are kept in `.cache/debian-roots/debs` for the next profile). A build
 * happens in `<name>.partial-<pid>` and is renamed into place only after its tools were checked and
 * its completion marker written, so a killed build is redone, never used.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { debianMirror, type DebianMirror } from './apt-sources.ts';
import { REPO } from './deploy-env.ts';

export type DebianProfile = 'stock' | 'python';

interface ProfileSpec {
  include: string[];
  has: string[];
  lacks: string[];
}

const COMMON_TOOLS = ['sh', 'bash', 'tar', 'gzip', 'sha256sum', 'mkfifo', 'tee', 'df', 'du', 'mv', 'find', 'sort', 'perl', 'openssl', 'timeout', 'setsid'];

export const PROFILES: Record<DebianProfile, ProfileSpec> = {
  stock: { include: ['ca-certificates'], has: COMMON_TOOLS, lacks: ['curl', 'wget', 'python3', 'rsync', 'sqlite3'] },
  python: { include: ['ca-certificates', 'python3'], has: [...COMMON_TOOLS, 'python3'], lacks: ['curl', 'wget', 'rsync'] },
};

export const CACHE_DIR = path.join(REPO, '.cache', 'debian-roots');
/** The completion marker, at the top of a finished root (JSON: profile, suite, mirror, build time). */
export const MARKER = '.ferry-debian-root.json';

export interface RootVolume {
  /** The volume's path as the far side sees it (inside the root), e.g. /volumes/vol-Ab12cd. */
  inside: string;
  /** The same directory on this machine. */
  onDisk: string;
  remove(): Promise<void>;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface DebianRoot {
  profile: DebianProfile;
  suite: string;
  mirror: string;
  /** Where it is entered: the cached build, or a bind mount of it where the checkout's path cannot be a ChrootDirectory. */
  path: string;
  /** The cached build, inside the repository. */
  cached: string;
  /** Why sshd would refuse this path as a ChrootDirectory (owner or mode of it or a parent), if it would. */
  chrootProblem?: string;
  /** `chroot ROOT sh -c SCRIPT sh ARGS...` with a plain PATH; never throws for a non-zero exit. */
  run(script: string, args?: string[], o?: { stdin?: string }): Promise<RunResult>;
  /** Mount /proc inside the root (shared by every caller of this process); the returned function unmounts it. */
  mountProc(): Promise<() => Promise<void>>;
  /** A fresh, empty volume directory inside the root (under /volumes). */
  makeVolume(): Promise<RootVolume>;
}

const CHROOT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function loud(lines: string[]): void {
  process.stderr.write(`\n${'!'.repeat(78)}\n${lines.map((l) => `!!! ${l}\n`).join('')}${'!'.repeat(78)}\n\n`);
}

function which(name: string): string | undefined {
  for (const dir of `${process.env.PATH ?? ''}:/usr/sbin:/sbin`.split(':')) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch { /* next */ }
  }
  return undefined;
}

/** CAP_SYS_ADMIN (bit 21) in the effective set: what mount and chroot need. */
function hasSysAdmin(): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return !!m && (BigInt(`0x${m[1]}`) & (1n << 21n)) !== 0n;
}

/** What this machine lacks to build and enter a Debian root, or undefined. */
export function debianRootUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'Debian roots need Linux';
  if (process.getuid?.() !== 0) return 'building and entering a Debian root needs root (debootstrap, chroot, mount)';
  for (const tool of ['debootstrap', 'chroot', 'mount', 'umount']) {
    if (!which(tool)) return `${tool} is not installed: .ci/run must apt-get install ${tool === 'debootstrap' ? 'debootstrap' : 'util-linux/coreutils'}`;
  }
  if (!hasSysAdmin()) return 'this process may not mount (no CAP_SYS_ADMIN): /proc cannot be mounted inside a Debian root';
  return undefined;
}

/** Mount points at or under `dir`, deepest first (from /proc/self/mountinfo). */
export function mountsUnder(dir: string): string[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const out: string[] = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (!mp) continue;
    const p = unescape(mp);
    if (p === dir || p.startsWith(`${dir}/`)) out.push(p);
  }
  return out.sort((a, b) => b.length - a.length);
}

/** Unmount everything under `dir`, then remove it (renamed aside first, so a half-removed dir never looks whole). */
async function discard(dir: string): Promise<void> {
  for (const mp of mountsUnder(dir)) {
    const r = spawnSync('umount', [mp], { encoding: 'utf8' });
    if (r.status !== 0) spawnSync('umount', ['-l', mp]);
  }
  if (mountsUnder(dir).length) throw new Error(`cannot remove ${dir}: something is still mounted under it (${mountsUnder(dir).join(', ')})`);
  const trash = path.join(path.dirname(dir), `trash-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  await fsp.rename(dir, trash);
  await fsp.rm(trash, { recursive: true, force: true });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Leftovers of killed builds (partial roots of dead pids, trash dirs of dead pids). */
export async function removeLeftovers(): Promise<void> {
  for (const name of await fsp.readdir(CACHE_DIR)) {
    const m = /\.partial-(\d+)$|^trash-(\d+)-/.exec(name);
    if (!m) continue;
    const pid = Number(m[1] ?? m[2]);
    if (pid !== process.pid && pidAlive(pid)) continue;
    await discard(path.join(CACHE_DIR, name));
  }
}

/**
 * Why sshd's ChrootDirectory would refuse `dir`: it and every parent must be owned by root and
 * not writable by group or others.
 */
export function chrootProblem(dir: string): string | undefined {
  for (let p = path.resolve(dir); ; p = path.dirname(p)) {
    const st = fs.statSync(p);
    if (st.uid !== 0) return `${p} is owned by uid ${st.uid}, not root (fix: chown root ${p}, or keep the checkout under root-owned dirs)`;
    if (st.mode & 0o022) return `${p} is group- or world-writable (mode ${(st.mode & 0o7777).toString(8)}; fix: chmod go-w ${p}, or keep the checkout out of /tmp)`;
    if (p === path.dirname(p)) return undefined;
  }
}

/** Whether `root` is a finished build of `profile` and `suite` (its completion marker says so, with the profile's packages). */
export function isComplete(root: string, profile: DebianProfile, suite: string): boolean {
  let m: { profile?: unknown; suite?: unknown; include?: unknown };
  try {
    m = JSON.parse(fs.readFileSync(path.join(root, MARKER), 'utf8'));
  } catch {
    return false;
  }
  return m.profile === profile && m.suite === suite && JSON.stringify(m.include) === JSON.stringify(PROFILES[profile].include);
}

async function chrootRun(root: string, script: string, args: string[] = [], o: { stdin?: string } = {}): Promise<RunResult> {
  const r = await execa('chroot', [root, 'sh', '-c', script, 'sh', ...args], {
    reject: false, stripFinalNewline: false, extendEnv: false, env: { PATH: CHROOT_PATH, HOME: '/root', LANG: 'C.UTF-8' },
    ...(o.stdin !== undefined ? { input: o.stdin } : { stdin: 'ignore' as const }),
  });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Which of the profile's required tools are missing and which forbidden ones are present. */
export async function checkProfile(root: string, profile: DebianProfile): Promise<string[]> {
  const spec = PROFILES[profile];
  const r = await chrootRun(root, 'for t in "$@"; do command -v "$t" >/dev/null 2>&1 && echo "has $t" || echo "lacks $t"; done', [...spec.has, ...spec.lacks]);
  const lines = new Set(r.stdout.split('\n'));
  const wrong: string[] = [];
  for (const t of spec.has) if (!lines.has(`has ${t}`)) wrong.push(`lacks ${t}`);
  for (const t of spec.lacks) if (!lines.has(`lacks ${t}`)) wrong.push(`has ${t}`);
  return wrong;
}

async function build(profile: DebianProfile, mirror: DebianMirror, final: string): Promise<void> {
  const spec = PROFILES[profile];
  const partial = `${final}.partial-${process.pid}`;
  const debs = path.join(CACHE_DIR, 'debs');
  const log = `${final}.log`;
  await fsp.mkdir(debs, { recursive: true });
  const started = Date.now();
  process.stderr.write(`# building Debian root ${path.relative(REPO, final)} (${profile}: minbase + ${spec.include.join(', ')}) `
    + `from ${mirror.uri} ${mirror.suite} (apt source ${mirror.file}); once per checkout, ~45 s\n`);
  const r = await execa('debootstrap', ['--variant=minbase', `--include=${spec.include.join(',')}`, `--cache-dir=${debs}`, mirror.suite, partial, mirror.uri], {
    reject: false, all: true, stdin: 'ignore', env: { DEBIAN_FRONTEND: 'noninteractive' },
  });
  await fsp.writeFile(log, String(r.all ?? ''));
  if (r.exitCode !== 0) {
    await discard(partial).catch(() => undefined);
    const tail = String(r.all ?? '').trim().split('\n').slice(-8).join('\n');
    throw new Error(`debootstrap of ${profile} (${mirror.suite} from ${mirror.uri}) failed (exit ${r.exitCode}; log ${log}):\n${tail}`);
  }
  // As the image does: no apt lists, no downloaded packages.
  await chrootRun(partial, 'rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /var/cache/apt/*.bin');
  const wrong = await checkProfile(partial, profile);
  if (wrong.length) {
    await discard(partial);
    throw new Error(`Debian root ${profile} is not what the profile promises: ${wrong.join(', ')}`);
  }
  const seconds = Math.round((Date.now() - started) / 100) / 10;
  await fsp.writeFile(path.join(partial, MARKER), `${JSON.stringify({ profile, suite: mirror.suite, mirror: mirror.uri, include: spec.include, seconds, builtAt: new Date().toISOString() })}\n`);
  try {
    await fsp.rename(partial, final);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
    await discard(partial); // another process finished the same build first
  }
  process.stderr.write(`# built ${path.relative(REPO, final)} in ${seconds} s\n`);
}

const procUsers = new Map<string, number>();
let exitHook = false;

function mountProcFor(root: string): () => Promise<() => Promise<void>> {
  const target = path.join(root, 'proc');
  return async () => {
    const n = procUsers.get(root) ?? 0;
    if (n === 0 && !mountsUnder(target).includes(target)) {
      const r = await execa('mount', ['-t', 'proc', 'proc', target], { reject: false });
      if (r.exitCode !== 0) throw new Error(`cannot mount /proc in ${root}: ${String(r.stderr).trim()}`);
      if (!exitHook) {
        exitHook = true;
        process.on('exit', () => {
          for (const [r0, users] of procUsers) if (users > 0) spawnSync('umount', [path.join(r0, 'proc')]);
        });
      }
      procUsers.set(root, 1);
    } else {
      procUsers.set(root, n + 1); // n === 0: mounted by an earlier run that was killed; ours to unmount now
    }
    let done = false;
    return async () => {
      if (done) return;
      done = true;
      const left = (procUsers.get(root) ?? 1) - 1;
      procUsers.set(root, left);
      if (left === 0 && mountsUnder(target).includes(target)) {
        const r = await execa('umount', [target], { reject: false });
        if (r.exitCode !== 0) throw new Error(`cannot unmount ${target}: ${String(r.stderr).trim()}`);
      }
    };
  };
}

/**
 * sshd enters a ChrootDirectory only when it and every parent are root-owned and not group- or
 * world-writable. A checkout under /tmp (or a user's home) is not: the cached root is then
 * bind-mounted at /run/chroma-ferry-test/<profile>-<suite>, whose parents are root's own. An
 * earlier bind there (and a /proc inside it) is unmounted first, so a rebuilt root is the one seen.
 */
function enterablePath(root: string, profile: DebianProfile, suite: string): string {
  if (!chrootProblem(root)) return root;
  const safe = path.join('/run', 'chroma-ferry-test', `${profile}-${suite}`);
  fs.mkdirSync(safe, { recursive: true, mode: 0o755 });
  for (const mp of mountsUnder(safe)) {
    const r = spawnSync('umount', [mp], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`cannot unmount ${mp}: ${String(r.stderr).trim()}`);
  }
  const r = spawnSync('mount', ['--bind', root, safe], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cannot bind-mount ${root} at ${safe}: ${String(r.stderr).trim()}`);
  return safe;
}

function handle(profile: DebianProfile, mirror: DebianMirror, cached: string): DebianRoot {
  const root = enterablePath(cached, profile, mirror.suite);
  const problem = chrootProblem(root);
  if (problem) loud([`sshd will refuse ChrootDirectory ${root}:`, problem, 'The chrooted ssh tests fail until this is fixed.']);
  return {
    profile,
    suite: mirror.suite,
    mirror: mirror.uri,
    path: root,
    cached,
    chrootProblem: problem,
    run: (script, args, o) => chrootRun(root, script, args, o),
    mountProc: mountProcFor(root),
    async makeVolume() {
      const base = path.join(root, 'volumes');
      await fsp.mkdir(base, { recursive: true, mode: 0o755 });
      const onDisk = await fsp.mkdtemp(path.join(base, 'vol-'));
      await fsp.chmod(onDisk, 0o755);
      return { inside: `/volumes/${path.basename(onDisk)}`, onDisk, remove: () => fsp.rm(onDisk, { recursive: true, force: true }) };
    },
  };
}

const built = new Map<DebianProfile, Promise<DebianRoot>>();

/**
 * The Debian root of `profile`, built on first use. Where this machine cannot build or enter one
 * (not root, no debootstrap, no mount): throws under CI=true, else warns loudly and returns null
 * (the caller skips).
 */
export async function debianRoot(profile: DebianProfile): Promise<DebianRoot | null> {
  const why = debianRootUnavailable();
  if (why) {
    if (process.env.CI === 'true') throw new Error(why);
    loud([`WARNING: ${why}.`, 'The tests on a real Debian root (the far side\'s userland) are SKIPPED on this machine.']);
    return null;
  }
  if (!built.has(profile)) {
    built.set(profile, (async () => {
      const mirror = debianMirror();
      const final = path.join(CACHE_DIR, `${profile}-${mirror.suite}`);
      await fsp.mkdir(CACHE_DIR, { recursive: true, mode: 0o755 });
      await removeLeftovers();
      if (!isComplete(final, profile, mirror.suite)) {
        if (fs.existsSync(final)) await discard(final); // a killed or outdated build
        await build(profile, mirror, final);
      }
      return handle(profile, mirror, final);
    })());
    built.get(profile)!.catch(() => built.delete(profile));
  }
  return built.get(profile)!;
}
