/**
 * bench: `deploy` of a generated Chroma database (about BENCH_MB MB, 768-d, real Chroma) to an
 * `ssh://` target on loopback (a throw-away sshd), against, in the same run:
 *   - the seed's manual sequence, in its order: remote `tar czf` backup, local `tar czf`,
 *     `split -b 10m`, one `sftp put` per chunk, remote `cat` + `tar xzf`, `mv` to `.old`;
 *   - the raw limit: the remote backup running while `tar cz SRC | ssh 'tar xz -C NAME.new'` streams.
 * Then our peak memory at about 50 MB and at BENCH_MB, and the downtime window (swap start ->
 * every count served) next to the restart alone (restart command -> heartbeat, measured just
 * after the deploy, on the same server and data). Prints `name value unit` lines and `ratio <name> <value>`; exits 0
 * whatever the numbers.
 *
 *   npm run bench:deploy        BENCH_MB=150 npm run bench:deploy
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { buildSampleDb } from '../testkit/sample-db.ts';
import { freePort } from '../lib/chroma/server.ts';
import { localChromaRestartCommand } from '../testkit/restart-command.ts';
import { shQuote } from '../lib/remote/shell.ts';
import { waitForHeartbeat } from '../lib/chroma/http.ts';
import { startSshd } from '../test/helpers/sshd.ts';

const BIG_MB = Number(process.env.BENCH_MB ?? 150);
const SMALL_MB = 50;
const RECORD_KB = 4.2; // on-disk size of one 768-d record in a Chroma 1.x persist dir (measured: 22,588 records -> 92 MB)
const CLI = fileURLToPath(new URL('../bin/chroma-ferry.js', import.meta.url));
const line = (name: string, value: number | string, unit: string) => process.stdout.write(`${name} ${value} ${unit}\n`);
const ratio = (name: string, value: number) => process.stdout.write(`ratio ${name} ${value.toFixed(2)}\n`);

const sshd = await startSshd();
if (!sshd) {
  process.stdout.write('skipped: no sshd on this machine (apt-get install openssh-server)\n');
  process.exit(0);
}
const root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-bench-deploy-'));
const ssh = ['ssh', '-i', sshd.keyFile, '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', ...sshd.sshOptions.flatMap((o) => ['-o', o]), '-p', String(sshd.port), `${sshd.user}@127.0.0.1`];
const sftp = ['sftp', '-i', sshd.keyFile, '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', ...sshd.sshOptions.flatMap((o) => ['-o', o]), '-P', String(sshd.port), `${sshd.user}@127.0.0.1`];
const volume = path.join(root, 'volume');
const live = path.join(volume, 'chroma_db');
const old = path.join(root, 'old-db');
const remote = (cmd: string) => execa(ssh[0]!, [...ssh.slice(1), cmd]);

async function dirMb(dir: string): Promise<number> {
  const { stdout } = await execa('du', ['-sk', dir]);
  return Number(stdout.split(/\s+/)[0]) / 1024;
}

/** The remote volume as before every run: the old database live, nothing else. */
async function resetVolume(): Promise<void> {
  await fs.rm(volume, { recursive: true, force: true });
  await fs.mkdir(volume, { recursive: true });
  await fs.cp(old, live, { recursive: true });
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

async function manualSequence(src: string): Promise<number> {
  const work = path.join(root, 'manual');
  await fs.rm(work, { recursive: true, force: true });
  await fs.mkdir(work);
  return timed(async () => {
    await remote(`tar czf ${shQuote(path.join(volume, 'backup.tar.gz'))} -C ${shQuote(volume)} chroma_db`);
    await execa('tar', ['czf', path.join(work, 'archive.tar.gz'), '-C', src, '.']);
    await execa('split', ['-b', '10m', path.join(work, 'archive.tar.gz'), path.join(work, 'part-')]);
    await remote(`mkdir -p ${shQuote(path.join(volume, 'incoming'))}`);
    for (const part of (await fs.readdir(work)).filter((f) => f.startsWith('part-')).sort()) {
      await execa(sftp[0]!, ['-b', '-', ...sftp.slice(1)], { input: `put ${path.join(work, part)} ${path.join(volume, 'incoming', part)}\n` });
    }
    await remote(`cat ${shQuote(path.join(volume, 'incoming'))}/part-* > ${shQuote(path.join(volume, 'a.tar.gz'))} && mkdir ${shQuote(`${live}.new`)} && tar xzf ${shQuote(path.join(volume, 'a.tar.gz'))} -C ${shQuote(`${live}.new`)}`);
    await remote(`mv ${shQuote(live)} ${shQuote(`${live}.old`)} && mv ${shQuote(`${live}.new`)} ${shQuote(live)}`);
  });
}

async function rawLimit(src: string): Promise<number> {
  return timed(async () => {
    await Promise.all([
      remote(`tar czf ${shQuote(path.join(volume, 'backup.tar.gz'))} -C ${shQuote(volume)} chroma_db`),
      execa('sh', ['-c', `tar cz -C ${shQuote(src)} . | ${ssh.map(shQuote).join(' ')} ${shQuote(`mkdir -p ${shQuote(`${live}.new`)} && tar xz -C ${shQuote(`${live}.new`)}`)}`]),
    ]);
  });
}

async function ours(src: string): Promise<{ secs: number; rssMb: number; downtimeMs: number; restartMs: number; restartCmdMs: number; steps: { name: string; secs: number }[] }> {
  const port = await freePort();
  const restartCmd = localChromaRestartCommand({ pidFile: path.join(root, 'prod.pid'), port, dataDir: live, logFile: path.join(root, 'prod.log') });
  await execa('sh', ['-c', restartCmd]); // the server runs on the old data before the deploy
  const t0 = performance.now();
  const r = await execa(process.execPath, [CLI, 'deploy', '--source', src, '--target', sshd!.target, '--volume', volume, '--ssh-key', sshd!.keyFile,
    ...sshd!.sshOptions.flatMap((o) => ['--ssh-option', o]), '--restart-cmd', restartCmd, '--health-url', `http://127.0.0.1:${port}`, '--yes', '--json'],
  { reject: false, env: { CI: 'true', CHROMA_FERRY_REPORT_MAXRSS: '1' } });
  const secs = (performance.now() - t0) / 1000;
  // The restart alone, as a user sees it: the restart command until the server answers again,
  // on the same server serving the deployed data (the baseline of the downtime window).
  const r0 = performance.now();
  await execa('sh', ['-c', restartCmd]);
  await waitForHeartbeat(`http://127.0.0.1:${port}`, { timeoutMs: 60_000, intervalMs: 20 });
  const restartAloneMs = performance.now() - r0;
  const pid = Number(await fs.readFile(path.join(root, 'prod.pid'), 'utf8').catch(() => '0'));
  if (pid) try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
  if (r.exitCode !== 0) throw new Error(`deploy failed: ${r.stderr.slice(-800)}`);
  const s = JSON.parse(r.stdout);
  const steps = (s.steps as { name: string; ms: number }[]).map((st) => ({ name: st.name, secs: st.ms / 1000 }));
  return { secs, rssMb: Number(/maxrss_kb (\d+)/.exec(r.stderr)?.[1]) / 1024, downtimeMs: s.downtimeMs, restartMs: restartAloneMs, restartCmdMs: s.restartMs, steps };
}

try {
  await buildSampleDb(old, [{ name: 'legacy', count: 500, dim: 768 }]);
  const small = path.join(root, 'src-small');
  const big = path.join(root, 'src-big');
  await buildSampleDb(small, [{ name: 'bench', count: Math.round((SMALL_MB * 1024) / RECORD_KB), dim: 768 }]);
  await buildSampleDb(big, [{ name: 'bench', count: Math.round((BIG_MB * 1024) / RECORD_KB), dim: 768 }]);
  line('source_mb', (await dirMb(big)).toFixed(0), 'MB');

  await resetVolume();
  const manual = await manualSequence(big);
  await resetVolume();
  const raw = await rawLimit(big);
  await resetVolume();
  const ob = await ours(big);
  await resetVolume();
  const os_ = await ours(small);

  line('manual_sequence', manual.toFixed(2), 's');
  line('raw_limit', raw.toFixed(2), 's');
  line('ours', ob.secs.toFixed(2), 's');
  for (const st of ob.steps) line(`ours_step_${st.name}`, st.secs.toFixed(2), 's');
  line('ours_peak_rss_small', os_.rssMb.toFixed(0), 'MB');
  line('ours_peak_rss_big', ob.rssMb.toFixed(0), 'MB');
  line('small_source_mb', (await dirMb(small)).toFixed(0), 'MB');
  line('restart_alone', (ob.restartMs / 1000).toFixed(2), 's'); // restart command -> heartbeat, same server and data
  line('restart_cmd_in_deploy', (ob.restartCmdMs / 1000).toFixed(2), 's'); // the command only (the server then starts)
  line('downtime_window', (ob.downtimeMs / 1000).toFixed(2), 's');
  ratio('ours_vs_manual_sequence', ob.secs / manual);
  ratio('ours_vs_raw_limit', ob.secs / raw);
  ratio('peak_rss_big_vs_small', ob.rssMb / os_.rssMb);
  ratio('downtime_minus_restart_s', (ob.downtimeMs - ob.restartMs) / 1000);
} finally {
  await sshd.stop();
  await fs.rm(root, { recursive: true, force: true });
}
