/**
 * bench: `deploy` of a generated Chroma database (about BENCH_MB MB, 768-d, real Chroma) to an
 * `ssh://` target on loopback (a throw-away sshd), against, in the same run:
 *   - the seed's manual sequence, in its order: remote `tar czf` backup, local `tar czf`,
 *     `split -b 10m`, one `sftp put` per chunk, remote `cat` + `tar xzf`, `mv` to `.old`, restart;
 *   - the raw limit: the remote backup running while `tar cz SRC | ssh 'tar xz -C NAME.new'` streams;
 *     "bare pipes" is that plus the `mv` swap and the restart (restart command -> heartbeat);
 *     "bare pipes verified" is that plus one count of every collection (Chroma's first count after
 *     a restart: the least a verify after the restart does), and `floor_vs_bare` adds the CLI's
 *     start (`cli_start`, `chroma-ferry --version`): what no deploy that verifies can go under.
 * Then our peak memory at about 50 MB and at BENCH_MB, and the downtime window (swap start ->
 * every count served) next to the restart alone (restart command -> heartbeat, measured just
 * after the deploy, on the same server and data). Prints `name value unit` lines and `ratio <name> <value>`; exits 0
 * whatever the numbers.
 *
 * The far side is a Debian root of the `stock` profile (test/helpers/debian-root.ts: the official
 * Chroma image's userland, no python3) entered by the throw-away sshd's ChrootDirectory; the Chroma
 * server runs on this machine on the volume inside it, and ours restarts it through a relay
 * (test/helpers/restart-relay.ts). `--far-side host` logs in to this machine's own userland instead
 * (here: root's login shell, whose ~/.bashrc runs `pyenv init`, ~0.45 s per login).
 *
 * `--link RATE` (e.g. 50mbit) also measures over an emulated WAN link: the bench re-runs itself in
 * a private network namespace (`unshare -n`, root), runs the three methods on its loopback as
 * above, then sets lo's MTU to 1500, shapes it with `tc ... tbf rate RATE burst 256kb latency 100ms`
 * and runs them again (`*_link` lines and ratios). Needs `unshare` and `tc`/`ip` (iproute2), and
 * everything installed beforehand: there is no network in the namespace. `--size MB` sets the
 * database size (default 150, 100 with --link); `--link-only` skips the loopback pass (a quicker
 * look at the link figures). `--rounds N` runs the three methods N times in a row on the same
 * databases (each pass; built once) and ends with each ratio's best and spread (`ratio NAME_best`,
 * `ratio NAME_spread`): the issue's "best of three runs and the spread" in one command.
 *
 *   npm run bench:deploy        BENCH_MB=150 npm run bench:deploy
 *   npm run bench:deploy -- --link 50mbit [--size 30] [--link-only] [--rounds 3]
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { buildSampleDb } from '../testkit/sample-db.ts';
import { freePort } from '../lib/chroma/server.ts';
import { localChromaRestartCommand } from '../testkit/restart-command.ts';
import { shQuote } from '../lib/remote/shell.ts';
import { listCollectionCounts, waitForHeartbeat } from '../lib/chroma/http.ts';
import { startSshd, type TestSshd } from '../test/helpers/sshd.ts';
import { debianRoot } from '../test/helpers/debian-root.ts';
import { startRestartRelay } from '../test/helpers/restart-relay.ts';
import { enterShapedNamespace, linkProblem, loopbackUp, parseLinkRate, shapeLoopback, IN_NAMESPACE_ENV } from './link-shaping.ts';

const usage = (msg: string): never => {
  process.stderr.write(`${msg}\n`);
  process.exit(2);
};
const USAGE = 'usage: npm run bench:deploy -- [--link 50mbit [--link-only]] [--size MB] [--rounds N] [--far-side debian|host]';
let args: { link?: string; size?: string; 'link-only'?: boolean; 'far-side'?: string; rounds?: string };
try {
  args = parseArgs({ options: { link: { type: 'string' }, size: { type: 'string' }, 'link-only': { type: 'boolean' }, 'far-side': { type: 'string' }, rounds: { type: 'string' } }, strict: true }).values;
} catch (e) {
  usage(`${(e as Error).message}; ${USAGE}`);
}
const farSideKind = args!['far-side'] ?? 'debian';
if (farSideKind !== 'debian' && farSideKind !== 'host') usage(`--far-side ${farSideKind}: give debian (a Debian root, the default) or host (this machine's own userland); ${USAGE}`);
const link = args!.link === undefined ? undefined : parseLinkRate(args!.link) ?? usage(`--link ${args!.link}: not a rate; give a number with kbit, mbit or gbit, e.g. --link 50mbit`);
const sizeArg = args!.size === undefined ? undefined : Number(args!.size);
if (sizeArg !== undefined && !(Number.isFinite(sizeArg) && sizeArg >= 5)) usage(`--size ${args!.size}: give the database size in MB, at least 5, e.g. --size 30`);
const linkOnly = Boolean(args!['link-only']);
const rounds = args!.rounds === undefined ? 1 : Number(args!.rounds);
if (!(Number.isInteger(rounds) && rounds >= 1 && rounds <= 10)) usage(`--rounds ${args!.rounds}: give how many times to run the methods, 1 to 10, e.g. --rounds 3`);
if (linkOnly && !link) usage('--link-only needs --link RATE, e.g. --link 50mbit --link-only');

if (link && process.env[IN_NAMESPACE_ENV] !== '1') {
  const problem = await linkProblem();
  if (problem) usage(`--link needs ${problem}; run the loopback bench without --link`);
  // The Debian root is built (from the mirror) here: the namespace has no network.
  if (farSideKind === 'debian') await debianRoot('stock');
  process.exit(enterShapedNamespace(process.argv.slice(1)));
}

const BIG_MB = sizeArg ?? Number(process.env.BENCH_MB ?? (link ? 100 : 150));
const SMALL_MB = Math.min(50, Math.max(5, Math.round(BIG_MB / 3)));
const RECORD_KB = 4.2; // on-disk size of one 768-d record in a Chroma 1.x persist dir (measured: 22,588 records -> 92 MB)
const CLI = fileURLToPath(new URL('../bin/chroma-ferry.js', import.meta.url));
const line = (name: string, value: number | string, unit: string) => process.stdout.write(`${name} ${value} ${unit}\n`);
const ratio = (name: string, value: number) => process.stdout.write(`ratio ${name} ${value.toFixed(2)}\n`);

if (link) await loopbackUp(); // in the namespace: lo starts down
const far = await openFarSide(farSideKind);
if (!far) {
  process.stdout.write('skipped: no sshd on this machine (apt-get install openssh-server)\n');
  process.exit(0);
}
const { sshd } = far;
const root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-bench-deploy-'));
const ssh = ['ssh', '-i', sshd.keyFile, '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', ...sshd.sshOptions.flatMap((o) => ['-o', o]), '-p', String(sshd.port), `${sshd.user}@127.0.0.1`];
const sftp = ['sftp', '-i', sshd.keyFile, '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', ...sshd.sshOptions.flatMap((o) => ['-o', o]), '-P', String(sshd.port), `${sshd.user}@127.0.0.1`];
/** The volume as the far side sees it (remote commands) and on this machine (setup, Chroma). */
const volume = far.volumeInside ?? path.join(root, 'volume');
const volumeOnDisk = far.volumeOnDisk ?? volume;
const live = path.join(volume, 'chroma_db');
const liveOnDisk = path.join(volumeOnDisk, 'chroma_db');
const old = path.join(root, 'old-db');
const remote = (cmd: string) => execa(ssh[0]!, [...ssh.slice(1), cmd]);

async function dirMb(dir: string): Promise<number> {
  const { stdout } = await execa('du', ['-sk', dir]);
  return Number(stdout.split(/\s+/)[0]) / 1024;
}

/** The remote volume as before every run: the old database live, nothing else. */
async function resetVolume(): Promise<void> {
  await fs.rm(volumeOnDisk, { recursive: true, force: true });
  await fs.mkdir(volumeOnDisk, { recursive: true, mode: 0o755 });
  await fs.cp(old, liveOnDisk, { recursive: true });
}

interface FarSide {
  sshd: TestSshd;
  label: string;
  /** Set on a Debian root: the volume's path inside it and on this machine. */
  volumeInside?: string;
  volumeOnDisk?: string;
  /** The `--restart-cmd` ours gives: run on the far side, it runs `hostCmd` on this machine. */
  restartCommand(hostCmd: string): Promise<{ cmd: string; stop(): Promise<void> }>;
  close(): Promise<void>;
}

/** The sshd the three methods log in to: chrooted into a Debian root, or this machine's own. */
async function openFarSide(kind: string): Promise<FarSide | null> {
  const plain = async (label: string): Promise<FarSide | null> => {
    const sshd = await startSshd();
    return sshd && { sshd, label, restartCommand: async (cmd) => ({ cmd, stop: async () => {} }), close: () => sshd.stop() };
  };
  if (kind === 'host') return plain('host');
  const debian = await debianRoot('stock'); // null (said loudly) where this machine cannot build or enter one
  if (!debian) return plain('host (no Debian root here)');
  const unmountProc = await debian.mountProc();
  const sshd = await startSshd({ chrootDirectory: debian.path });
  if (!sshd) {
    await unmountProc();
    return null;
  }
  const vol = await debian.makeVolume();
  return {
    sshd,
    label: `debian-${debian.profile}-${debian.suite}`,
    volumeInside: vol.inside,
    volumeOnDisk: vol.onDisk,
    async restartCommand(hostCmd) {
      const relay = await startRestartRelay(debian, hostCmd);
      return { cmd: relay.insideCmd, stop: () => relay.stop() };
    },
    async close() {
      await sshd.stop();
      await vol.remove();
      await unmountProc();
    },
  };
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

/** The production server (on the old data) that every method restarts after its swap. */
async function prodServer(): Promise<{ port: number; restartCmd: string; restart: () => Promise<void>; stop: () => Promise<void> }> {
  const port = await freePort();
  const pidFile = path.join(root, 'prod.pid');
  const restartCmd = localChromaRestartCommand({ pidFile, port, dataDir: liveOnDisk, logFile: path.join(root, 'prod.log') });
  const restart = async () => {
    await execa('sh', ['-c', restartCmd]);
    await waitForHeartbeat(`http://127.0.0.1:${port}`, { timeoutMs: 60_000, intervalMs: 20 });
  };
  await restart();
  const stop = async () => {
    const pid = Number(await fs.readFile(pidFile, 'utf8').catch(() => '0'));
    if (pid) try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
  };
  return { port, restartCmd, restart, stop };
}

async function manualSequence(src: string): Promise<number> {
  const work = path.join(root, 'manual');
  await fs.rm(work, { recursive: true, force: true });
  await fs.mkdir(work);
  const server = await prodServer();
  try {
    return await timed(async () => {
      await remote(`tar czf ${shQuote(path.join(volume, 'backup.tar.gz'))} -C ${shQuote(volume)} chroma_db`);
      await execa('tar', ['czf', path.join(work, 'archive.tar.gz'), '-C', src, '.']);
      await execa('split', ['-b', '10m', path.join(work, 'archive.tar.gz'), path.join(work, 'part-')]);
      await remote(`mkdir -p ${shQuote(path.join(volume, 'incoming'))}`);
      for (const part of (await fs.readdir(work)).filter((f) => f.startsWith('part-')).sort()) {
        await execa(sftp[0]!, ['-b', '-', ...sftp.slice(1)], { input: `put ${path.join(work, part)} ${path.join(volume, 'incoming', part)}\n` });
      }
      await remote(`cat ${shQuote(path.join(volume, 'incoming'))}/part-* > ${shQuote(path.join(volume, 'a.tar.gz'))} && mkdir ${shQuote(`${live}.new`)} && tar xzf ${shQuote(path.join(volume, 'a.tar.gz'))} -C ${shQuote(`${live}.new`)}`);
      await remote(`mv ${shQuote(live)} ${shQuote(`${live}.old`)} && mv ${shQuote(`${live}.new`)} ${shQuote(live)}`);
      await server.restart(); // the seed's `fly apps restart`
    });
  } finally {
    await server.stop();
  }
}

/**
 * The raw limit (backup alongside one tar pipe), bare pipes (that, then the swap and a restart) and
 * bare pipes verified (that, then one count of every collection: what ours' verify must do at least).
 */
async function barePipes(src: string): Promise<{ raw: number; bare: number; verified: number }> {
  const server = await prodServer();
  try {
    let raw = 0;
    const bare = await timed(async () => {
      raw = await timed(() => Promise.all([
        remote(`tar czf ${shQuote(path.join(volume, 'backup.tar.gz'))} -C ${shQuote(volume)} chroma_db`),
        execa('sh', ['-c', `tar cz -C ${shQuote(src)} . | ${ssh.map(shQuote).join(' ')} ${shQuote(`mkdir -p ${shQuote(`${live}.new`)} && tar xz -C ${shQuote(`${live}.new`)}`)}`]),
      ]));
      await remote(`mv ${shQuote(live)} ${shQuote(`${live}.old`)} && mv ${shQuote(`${live}.new`)} ${shQuote(live)}`);
      await server.restart();
    });
    const firstCount = await timed(() => listCollectionCounts(`http://127.0.0.1:${server.port}`));
    return { raw, bare, verified: bare + firstCount };
  } finally {
    await server.stop();
  }
}

type Ours = { secs: number; rssMb: number; downtimeMs: number; restartMs: number; firstCountMs: number; restartCmdMs: number; steps: { name: string; secs: number }[] };

async function ours(src: string): Promise<Ours> {
  const server = await prodServer(); // the server runs on the old data before the deploy
  const restart = await far!.restartCommand(server.restartCmd);
  let r;
  let secs;
  let restartAloneMs;
  let firstCountMs;
  try {
    const t0 = performance.now();
    r = await execa(process.execPath, [CLI, 'deploy', '--source', src, '--target', sshd.target, '--volume', volume, '--ssh-key', sshd.keyFile,
      ...sshd.sshOptions.flatMap((o) => ['--ssh-option', o]), '--restart-cmd', restart.cmd, '--health-url', `http://127.0.0.1:${server.port}`, '--yes', '--json'],
    { reject: false, env: { CI: 'true', CHROMA_FERRY_REPORT_MAXRSS: '1' } });
    secs = (performance.now() - t0) / 1000;
    // The restart alone, as a user sees it: the restart command until the server answers again,
    // on the same server serving the deployed data (the baseline of the downtime window).
    restartAloneMs = (await timed(server.restart)) * 1000;
    // Then the server's first count of the collection (Chroma loads it on first use): the part of
    // the verify that no deploy can skip, next to the downtime window.
    firstCountMs = (await timed(() => listCollectionCounts(`http://127.0.0.1:${server.port}`))) * 1000;
  } finally {
    await restart.stop();
    await server.stop();
  }
  if (r.exitCode !== 0) throw new Error(`deploy failed: ${r.stderr.slice(-800)}`);
  const s = JSON.parse(r.stdout);
  const steps = (s.steps as { name: string; ms: number }[]).map((st) => ({ name: st.name, secs: st.ms / 1000 }));
  return { secs, rssMb: Number(/maxrss_kb (\d+)/.exec(r.stderr)?.[1]) / 1024, downtimeMs: s.downtimeMs, restartMs: restartAloneMs, firstCountMs: firstCountMs!, restartCmdMs: s.restartMs, steps };
}

/** The three methods on the same data, each from the same volume state. */
async function runMethods(big: string): Promise<{ manual: number; raw: number; bare: number; bareVerified: number; ob: Ours }> {
  await resetVolume();
  const manual = await manualSequence(big);
  await resetVolume();
  const { raw, bare, verified: bareVerified } = await barePipes(big);
  await resetVolume();
  const ob = await ours(big);
  return { manual, raw, bare, bareVerified, ob };
}

/** The CLI's start alone (`--version`, best of three, just before the round's methods): a cost bare pipes has not. */
async function cliStart(): Promise<number> {
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(await timed(() => execa(process.execPath, [CLI, '--version'])));
  return Math.min(...runs);
}

try {
  await buildSampleDb(old, [{ name: 'legacy', count: 500, dim: 768 }]);
  const small = path.join(root, 'src-small');
  const big = path.join(root, 'src-big');
  await buildSampleDb(small, [{ name: 'bench', count: Math.round((SMALL_MB * 1024) / RECORD_KB), dim: 768 }]);
  await buildSampleDb(big, [{ name: 'bench', count: Math.round((BIG_MB * 1024) / RECORD_KB), dim: 768 }]);
  line('source_mb', (await dirMb(big)).toFixed(0), 'MB');
  line('far_side', far.label, 'userland');

  /** Every round's ratios by name, for the closing best and spread. */
  const seen = new Map<string, number[]>();
  const roundRatio = (name: string, value: number) => {
    ratio(name, value);
    seen.set(name, [...(seen.get(name) ?? []), value]);
  };

  if (!linkOnly) {
    for (let round = 1; round <= rounds; round++) {
      if (rounds > 1) line('round', round, `of ${rounds}`);
      const cli = await cliStart();
      const { manual, raw, bare, bareVerified, ob } = await runMethods(big);
      await resetVolume();
      const os_ = await ours(small);

      line('manual_sequence', manual.toFixed(2), 's');
      line('raw_limit', raw.toFixed(2), 's');
      line('bare_pipes', bare.toFixed(2), 's');
      line('bare_pipes_verified', bareVerified.toFixed(2), 's');
      line('cli_start', cli.toFixed(2), 's'); // `chroma-ferry --version`: Node and the CLI's modules
      line('ours', ob.secs.toFixed(2), 's');
      for (const st of ob.steps) line(`ours_step_${st.name}`, st.secs.toFixed(2), 's');
      line('ours_peak_rss_small', os_.rssMb.toFixed(0), 'MB');
      line('ours_peak_rss_big', ob.rssMb.toFixed(0), 'MB');
      line('small_source_mb', (await dirMb(small)).toFixed(0), 'MB');
      line('restart_alone', (ob.restartMs / 1000).toFixed(2), 's'); // restart command -> heartbeat, same server and data
      line('first_count_after_restart', (ob.firstCountMs / 1000).toFixed(2), 's');
      line('restart_cmd_in_deploy', (ob.restartCmdMs / 1000).toFixed(2), 's'); // the command only (the server then starts)
      line('downtime_window', (ob.downtimeMs / 1000).toFixed(2), 's');
      roundRatio('ours_vs_manual_sequence', ob.secs / manual);
      roundRatio('ours_vs_raw_limit', ob.secs / raw);
      roundRatio('ours_vs_bare', ob.secs / bare);
      roundRatio('bare_verified_vs_bare', bareVerified / bare);
      roundRatio('floor_vs_bare', (bareVerified + cli) / bare);
      roundRatio('ours_vs_bare_verified', ob.secs / bareVerified);
      roundRatio('peak_rss_big_vs_small', ob.rssMb / os_.rssMb);
      roundRatio('downtime_minus_restart_s', (ob.downtimeMs - ob.restartMs) / 1000);
      roundRatio('downtime_minus_restart_and_first_count_s', (ob.downtimeMs - ob.restartMs - ob.firstCountMs) / 1000);
    }
  }

  if (link) {
    await shapeLoopback(link);
    line('link', link, 'tbf');
    for (let round = 1; round <= rounds; round++) {
      if (rounds > 1) line('round_link', round, `of ${rounds}`);
      const cli = await cliStart();
      const l = await runMethods(big);
      line('manual_sequence_link', l.manual.toFixed(2), 's');
      line('raw_limit_link', l.raw.toFixed(2), 's');
      line('bare_pipes_link', l.bare.toFixed(2), 's');
      line('bare_pipes_verified_link', l.bareVerified.toFixed(2), 's');
      line('cli_start_link', cli.toFixed(2), 's');
      line('ours_link', l.ob.secs.toFixed(2), 's');
      for (const st of l.ob.steps) line(`ours_link_step_${st.name}`, st.secs.toFixed(2), 's');
      line('ours_peak_rss_link', l.ob.rssMb.toFixed(0), 'MB');
      line('downtime_window_link', (l.ob.downtimeMs / 1000).toFixed(2), 's');
      line('restart_alone_link', (l.ob.restartMs / 1000).toFixed(2), 's');
      line('first_count_after_restart_link', (l.ob.firstCountMs / 1000).toFixed(2), 's');
      roundRatio('ours_vs_bare_link', l.ob.secs / l.bare);
      roundRatio('bare_verified_vs_bare_link', l.bareVerified / l.bare);
      roundRatio('floor_vs_bare_link', (l.bareVerified + cli) / l.bare);
      roundRatio('ours_vs_bare_verified_link', l.ob.secs / l.bareVerified);
      roundRatio('ours_vs_manual_link', l.ob.secs / l.manual);
      roundRatio('downtime_minus_restart_link_s', (l.ob.downtimeMs - l.ob.restartMs) / 1000);
      roundRatio('downtime_minus_restart_and_first_count_link_s', (l.ob.downtimeMs - l.ob.restartMs - l.ob.firstCountMs) / 1000);
    }
  }

  if (rounds > 1) {
    // Lower is better for every ratio here: the best is the least.
    for (const [name, values] of seen) {
      ratio(`${name}_best`, Math.min(...values));
      ratio(`${name}_spread`, Math.max(...values) - Math.min(...values));
    }
  }
} finally {
  await far.close();
  await fs.rm(root, { recursive: true, force: true });
}
