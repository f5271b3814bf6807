/**
 * Runbook: deploy a local Chroma persist dir onto a remote volume (seed 000, "Fly Volumes Direct
 * Replace"). Ten steps, in order; each completed step pushes its undo on one compensation stack,
 * which unwinds once, newest first, on failure, Ctrl-C or SIGTERM.
 *
 *   preflight   source, target, tools, free space, lock      undo: release the lock
 *   manifest    consistent snapshot + per-collection counts  undo: (local only)
 *   backup      tar.gz of the live dir in .ferry/backups     undo: none (kept)
 *   package     tar + gzip stream into checksummed chunks    undo: (local only)
 *   upload      chunks to .ferry/incoming/<id>, verified      undo: none (kept to resume)
 *   reassemble  archive sha256, extract to NAME.new, list     undo: remove NAME.new
 *   swap        NAME -> NAME.old, NAME.new -> NAME            undo: old back, restart, verify
 *   restart     --restart-cmd                                 undo: in swap's undo
 *   verify      heartbeat + every count equals the manifest   undo: none
 *   cleanup     incoming chunks, work files, lock             undo: none
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pLimit from 'p-limit';
import { packToChunks, type PackResult } from '../lib/archive/pack.ts';
import { snapshotSource } from '../lib/archive/snapshot.ts';
import { listCollectionCounts, type ServedCollection } from '../lib/chroma/http.ts';
import { readSqliteManifest, type SqliteManifest } from '../lib/chroma/sqlite-manifest.ts';
import { CompensationStack, type UndoOutcome } from '../lib/compensation.ts';
import { UserError } from '../lib/errors.ts';
import type { RemoteHost } from '../lib/hosts/remote-host.ts';
import type { ChunkUploader } from '../lib/upload/chunk-uploader.ts';
import { backupName, incomingDir, remoteLayout, sortBackupsNewestFirst, trashDir, utcStamp, type RemoteLayout } from '../lib/remote-layout.ts';
import {
  acceptChunkScript, backupScript, cleanupScript, incomingStateScript, listBackupsScript, lockScript, parseKv,
  probeScript, pruneBackupsScript, reassembleScript, swapScript, unlockScript, unswapScript,
} from '../lib/remote-scripts.ts';
import { remoteScript } from '../lib/shell.ts';
import { formatBytes } from '../lib/units.ts';
import { waitUntilServing, type ExpectedCollection } from '../lib/verify-serving.ts';
import type { OutputMode } from '../lib/output.ts';
import { describeError, initialReports, runSteps, type StepDef, type StepReport } from '../lib/runbook-runner.ts';
import { writeJsonAtomic } from '../lib/atomic-file.ts';

export const DEPLOY_STEPS = ['preflight', 'manifest', 'backup', 'package', 'upload', 'reassemble', 'swap', 'restart', 'verify', 'cleanup'] as const;
export type DeployStep = (typeof DEPLOY_STEPS)[number];

export interface DeployOptions {
  source: string;
  host: RemoteHost;
  /** How chunks travel (sftp by default); the runbook verifies them the same way for every method. */
  uploader: ChunkUploader;
  volume: string;
  dbDir: string;
  chunkSize: number;
  healthUrl?: string;
  healthTimeoutMs: number;
  keepBackups: number;
  uploadConcurrency: number;
  workDir?: string;
  output: OutputMode;
  signal: AbortSignal;
  /** Takes a snapshot of the whole volume (fly: `--snapshot`) in the backup step; resolves with its id. */
  snapshot?: () => Promise<string>;
}

export interface DeploySummary {
  ok: boolean;
  runId: string;
  deployId?: string;
  target: string;
  volume: string;
  liveDir: string;
  steps: StepReport[];
  source: { dir: string; bytes: number; collections: number; records: number };
  archive?: { bytes: number; sha256: string; chunks: number; compressionRatio: number };
  upload: { method: string; chunksSent: number; chunksSkipped: number; bytesSent: number };
  backup?: { name: string; bytes: number; sha256: string; pruned: string[] };
  /** Volume snapshot taken before the backup (fly: `--snapshot`): a second restore point. */
  snapshotId?: string;
  restartMs?: number;
  downtimeMs?: number;
  verified: boolean;
  warnings: string[];
  error?: string;
  rolledBack: boolean;
  rollback: UndoOutcome[];
  failedDir?: string;
}

interface Ctx {
  o: DeployOptions;
  runId: string;
  layout: RemoteLayout;
  stack: CompensationStack;
  workDir: string;
  summary: DeploySummary;
  preDeploy?: ServedCollection[];
  manifest?: SqliteManifest;
  snapshotDir?: string;
  pack?: PackResult;
  deployId?: string;
  incoming?: string;
  trash?: string;
  swap?: { hadLive: boolean; movedOld: boolean };
  restartAttempted: boolean;
  swapStartedAt?: number;
}

export async function runDeploy(o: DeployOptions): Promise<DeploySummary> {
  const runId = crypto.randomBytes(6).toString('hex');
  const layout = remoteLayout(o.host.resolveVolume(o.volume), o.dbDir);
  const workDir = o.workDir ?? path.join(os.tmpdir(), `chroma-ferry-${runId}`);
  const summary: DeploySummary = {
    ok: false, runId, target: o.host.label, volume: layout.volume, liveDir: layout.live,
    steps: initialReports(DEPLOY_STEPS.map((name) => ({ name }))),
    source: { dir: o.source, bytes: 0, collections: 0, records: 0 },
    upload: { method: o.uploader.method, chunksSent: 0, chunksSkipped: 0, bytesSent: 0 },
    verified: false, warnings: [], rolledBack: false, rollback: [],
  };
  const ctx: Ctx = { o, runId, layout, stack: new CompensationStack(), workDir, summary, restartAttempted: false };

  const steps: StepDef<Ctx>[] = DEPLOY_STEPS.map((name) => ({ name, title: STEP_TITLES[name], run: STEPS[name] }));
  try {
    await fs.mkdir(workDir, { recursive: true });
    const r = await runSteps(steps, ctx, { output: o.output, signal: o.signal, stack: ctx.stack, reports: summary.steps });
    summary.ok = r.ok;
    summary.rollback = r.rollback;
    if (!r.ok) {
      summary.error = describeError(r.error, o.signal);
      const note = o.uploader.noteAfterFailure?.();
      if (note) summary.warnings.push(note);
      summary.rolledBack = r.rollback.some((u) => u.name === 'swap' && u.ok);
      // Refused before the swap: nothing on the remote changed, so it is a one-line user error (exit 2).
      if (r.error instanceof UserError && !ctx.swap) throw r.error;
    }
  } finally {
    await fs.rm(workDir, { recursive: true, force: true }).catch(() => undefined);
  }
  return summary;
}

const STEP_TITLES: Record<DeployStep, string> = {
  preflight: 'preflight: source, target, tools, free space, lock',
  manifest: 'manifest: consistent snapshot and per-collection counts',
  backup: 'backup: archive the live dir on the remote',
  package: 'package: tar + gzip into checksummed chunks',
  upload: 'upload: chunks to the remote, each verified',
  reassemble: 'reassemble: verify the archive, extract to NAME.new',
  swap: 'swap: NAME -> NAME.old, NAME.new -> NAME',
  restart: 'restart: the Chroma server',
  verify: 'verify: heartbeat and counts equal the manifest',
  cleanup: 'cleanup: work files and lock',
};

type Step = (c: Ctx, progress: (line: string) => void) => Promise<string | void>;

const STEPS: Record<DeployStep, Step> = {
  async preflight(c, progress) {
    const { o, layout } = c;
    c.summary.source.bytes = await dirBytes(o.source);
    progress(`probing ${o.host.label}`);
    const probe = parseKv((await o.host.run(probeScript(layout), { signal: o.signal })).stdout);
    const missing = (probe.get('missing') ?? '').trim();
    if (missing) throw new UserError(`${o.host.label} lacks required tools: ${missing}; install them on the remote host`);
    if (probe.get('volume') !== 'dir') {
      throw new UserError(`volume ${layout.volume} does not exist on ${o.host.label}; create it or fix --volume`);
    }
    if (probe.get('writable') !== 'yes') throw new UserError(`volume ${layout.volume} on ${o.host.label} is not writable by this user`);
    const availKb = Number((probe.get('df') ?? '').split(/\s+/)[3]);
    const liveKb = kbOf(probe.get('live'));
    // Incoming archive (<= source size) + extraction (source size) + the backup of the live dir.
    const needKb = Math.ceil((c.summary.source.bytes * 2.05) / 1024) + liveKb;
    if (Number.isFinite(availKb) && availKb < needKb) {
      throw new UserError(
        `not enough free space on ${layout.volume}: ${formatBytes(availKb * 1024)} free, about ${formatBytes(needKb * 1024)} needed ` +
          `(archive + extraction + backup); free space or lower --keep-backups`,
      );
    }
    await o.uploader.preflight?.(o.signal);
    if (o.healthUrl) {
      try {
        c.preDeploy = await listCollectionCounts(o.healthUrl);
      } catch {
        c.summary.warnings.push(`the server at ${o.healthUrl} did not answer before the deploy: rollback can check only that it answers`);
      }
    }
    const owner = JSON.stringify({
      runId: c.runId, command: 'deploy', user: os.userInfo().username, host: os.hostname(), pid: process.pid,
      startedAt: new Date().toISOString(),
    });
    const lock = await o.host.run(lockScript(layout, owner), { signal: o.signal });
    const kv = parseKv(lock.stdout);
    if (kv.get('lock') !== 'acquired') {
      const holder = safeJson(lock.stdout.split('\n').slice(1).join('\n'));
      throw new UserError(
        `another run holds the deploy lock on ${layout.volume}` +
          (holder.user ? ` (${holder.command ?? 'deploy'} by ${holder.user}@${holder.host}, pid ${holder.pid}, since ${holder.startedAt})` : '') +
          `; if no deploy is running, clear it with: chroma-ferry unlock --target ${o.host.label} --volume ${o.volume}`,
      );
    }
    c.stack.push('lock', async () => { await o.host.run(unlockScript(layout, c.runId)); });
    return `${formatBytes(c.summary.source.bytes)} source, ${formatBytes(availKb * 1024)} free on the volume`;
  },

  async manifest(c, progress) {
    progress('copying a consistent snapshot of the source');
    const snap = await snapshotSource(c.o.source, path.join(c.workDir, 'snapshot'), { signal: c.o.signal });
    c.snapshotDir = snap.dir;
    const m = readSqliteManifest(snap.dir);
    if (m.pendingWrites > 0) {
      c.summary.warnings.push(`source has ${m.pendingWrites} queued writes not yet applied; counts are of applied records`);
    }
    c.manifest = m;
    c.summary.source.collections = m.collections.length;
    c.summary.source.records = m.totalRecords;
    await writeJsonAtomic(path.join(c.workDir, 'manifest.json'), m);
    return `${m.collections.length} collections, ${m.totalRecords} records`;
  },

  async backup(c, progress) {
    const { o, layout } = c;
    let snap = '';
    if (o.snapshot) {
      progress('volume snapshot');
      c.summary.snapshotId = await o.snapshot();
      snap = `snapshot ${c.summary.snapshotId}; `;
    }
    const probe = parseKv((await o.host.run(probeScript(layout), { signal: o.signal })).stdout);
    if (probe.get('live') === 'absent') return `${snap ? `${snap}` : 'skipped: '}no live dir yet (first deploy)`;
    const name = backupName(layout.name, utcStamp());
    progress(`tar czf ${name}`);
    const kv = parseKv((await o.host.run(backupScript(layout, name), { signal: o.signal })).stdout);
    const backup = { name, bytes: Number(kv.get('bytes')), sha256: kv.get('sha256') ?? '', pruned: [] as string[] };
    const listed = (await o.host.run(listBackupsScript(layout), { signal: o.signal })).stdout;
    const names = sortBackupsNewestFirst(layout.name, listed.split('\n').map((l) => l.split(' ')[3] ?? '').filter(Boolean));
    const keep = Math.max(1, o.keepBackups);
    const prune = names.slice(keep).filter((n) => n !== name);
    if (prune.length) {
      await o.host.run(pruneBackupsScript(layout, prune), { signal: o.signal });
      backup.pruned = prune;
    }
    c.summary.backup = backup;
    return `${snap}${name} (${formatBytes(backup.bytes)})${prune.length ? `, pruned ${prune.length}` : ''}`;
  },

  async package(c, progress) {
    const total = c.summary.source.bytes;
    const pack = await packToChunks(c.snapshotDir!, path.join(c.workDir, 'chunks'), c.o.chunkSize, {
      signal: c.o.signal,
      onProgress: (done) => progress(`${formatBytes(done)} / ${formatBytes(total)}`),
    });
    c.pack = pack;
    c.deployId = pack.archiveSha256.slice(0, 16);
    c.summary.deployId = c.deployId;
    c.summary.archive = {
      bytes: pack.archiveBytes, sha256: pack.archiveSha256, chunks: pack.chunks.length,
      compressionRatio: pack.inputBytes ? pack.archiveBytes / pack.inputBytes : 1,
    };
    return `${pack.chunks.length} chunks, ${formatBytes(pack.archiveBytes)} (${(100 * c.summary.archive.compressionRatio).toFixed(0)}% of ${formatBytes(pack.inputBytes)})`;
  },

  async upload(c, progress) {
    const { o } = c;
    const pack = c.pack!;
    const dir = incomingDir(c.layout, c.deployId!);
    c.incoming = dir;
    const present = new Map<string, string>();
    for (const line of (await o.host.run(incomingStateScript(dir), { signal: o.signal })).stdout.split('\n')) {
      const [sha, name] = line.trim().split(/\s+/);
      if (sha && name) present.set(name, sha);
    }
    await o.uploader.begin?.(c.deployId!, o.signal);
    const limit = pLimit(Math.max(1, o.uploadConcurrency));
    let done = 0;
    await Promise.all(pack.chunks.map((ch) => limit(async () => {
      o.signal.throwIfAborted();
      if (present.get(ch.name) === ch.sha256) {
        c.summary.upload.chunksSkipped++;
      } else {
        const final = path.posix.join(dir, ch.name);
        const partial = path.posix.join(dir, `.${ch.name}.partial`);
        await o.uploader.upload(ch, partial, o.signal);
        await o.host.run(acceptChunkScript(partial, final, ch.size, ch.sha256), { signal: o.signal });
        c.summary.upload.chunksSent++;
        c.summary.upload.bytesSent += ch.size;
      }
      done++;
      progress(`${done}/${pack.chunks.length} chunks (${c.summary.upload.chunksSkipped} already there)`);
    })));
    const { chunksSent, chunksSkipped, bytesSent } = c.summary.upload;
    const extra = o.uploader.uploadNote?.();
    return `${chunksSent} sent (${formatBytes(bytesSent)}), ${chunksSkipped} already on the remote${extra ? `; ${extra}` : ''}`;
  },

  async reassemble(c) {
    const { o, layout } = c;
    const pack = c.pack!;
    c.stack.push('reassemble', async () => {
      await o.host.run(remoteScript('remove NAME.new', 'rm -rf "$1"', [layout.next]));
    });
    const kv = parseKv((await o.host.run(reassembleScript(layout, c.incoming!, pack.archiveSha256, pack.chunks.map((ch) => ch.name)), { signal: o.signal })).stdout);
    const wantList = crypto.createHash('sha256').update(pack.fileList.map((f) => `${f}\n`).join('')).digest('hex');
    if (Number(kv.get('files')) !== pack.fileList.length || kv.get('list_sha256') !== wantList) {
      throw new Error(`extracted file list on the remote differs from the source snapshot (${kv.get('files')} files, expected ${pack.fileList.length})`);
    }
    return `${pack.fileList.length} files in ${layout.next}`;
  },

  async swap(c) {
    const { o, layout } = c;
    c.trash = trashDir(layout, c.deployId!);
    c.swapStartedAt = performance.now();
    // Renames only, and never cancelled half-way: a signal is honoured once the undo is on the stack.
    const kv = parseKv((await o.host.run(swapScript(layout, c.trash))).stdout);
    const swap = { hadLive: kv.get('had_live') === 'yes', movedOld: kv.get('moved_old') === 'yes' };
    c.swap = swap;
    c.stack.push('swap', async () => {
      const failedName = `${layout.name}.failed-${utcStamp()}`;
      const r = parseKv((await o.host.run(unswapScript(layout, c.trash!, failedName, swap.hadLive, swap.movedOld))).stdout);
      c.summary.failedDir = r.get('failed');
      if (c.restartAttempted) {
        await o.host.restart();
        if (o.healthUrl && swap.hadLive) {
          const expected: ExpectedCollection[] = c.preDeploy ?? [];
          const check = await waitUntilServing(o.healthUrl, expected, { timeoutMs: o.healthTimeoutMs, settleMs: c.preDeploy ? 5000 : 0 });
          if (c.preDeploy && check.mismatches.length) {
            throw new Error(`old data is back but the server does not serve it as before: ${check.mismatches.join('; ')}`);
          }
        }
      }
    });
    o.signal.throwIfAborted();
    return swap.hadLive ? `${layout.live} -> ${layout.old}` : 'first deploy: no previous live dir';
  },

  async restart(c) {
    c.restartAttempted = true;
    const t0 = performance.now();
    const restarted = await c.o.host.restart({ signal: c.o.signal });
    c.summary.restartMs = performance.now() - t0;
    if (!restarted) {
      c.summary.warnings.push('no --restart-cmd: the server was not restarted and may still serve the old files');
      return 'skipped: no --restart-cmd';
    }
  },

  async verify(c) {
    const { o } = c;
    if (!o.healthUrl) {
      c.summary.warnings.push('no --health-url: the deployed data was not verified on a running server');
      return 'skipped: no --health-url';
    }
    const expected: ExpectedCollection[] = c.manifest!.collections;
    const check = await waitUntilServing(o.healthUrl, expected, { timeoutMs: o.healthTimeoutMs, signal: o.signal });
    if (check.mismatches.length) throw new Error(`the restarted server does not serve the deployed data: ${check.mismatches.join('; ')}`);
    c.summary.downtimeMs = performance.now() - c.swapStartedAt!;
    c.summary.verified = true;
    return `${expected.length} collections, counts equal (API ${check.api})`;
  },

  async cleanup(c) {
    const { o, layout } = c;
    await o.host.run(cleanupScript(c.incoming!, c.trash!), { signal: o.signal });
    await o.host.run(unlockScript(layout, c.runId));
    c.stack.drop('lock');
    c.stack.clear(); // the deploy is verified: nothing left to undo
    try {
      await o.uploader.cleanupAfterSuccess?.();
    } catch (e) {
      // The deploy is verified: a leftover elsewhere (bucket objects) is a warning, not a failure.
      c.summary.warnings.push(e instanceof Error ? e.message : String(e));
    }
    await fs.rm(c.workDir, { recursive: true, force: true });
  },
};

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += (await fs.stat(path.join(e.parentPath ?? (e as { path?: string }).path ?? dir, e.name))).size;
  }
  return total;
}

function kbOf(v: string | undefined): number {
  if (!v || v === 'absent') return 0;
  const n = Number(v.split(/\s+/)[0]);
  return Number.isFinite(n) ? n : 0;
}

function safeJson(text: string): Record<string, string> {
  try {
    return JSON.parse(text.trim()) as Record<string, string>;
  } catch {
    return {};
  }
}
