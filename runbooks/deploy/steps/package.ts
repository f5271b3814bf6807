/**
 * 4. package: tar + gzip of the snapshot streamed into checksummed chunks in this run's own dir.
 * When the upload step follows in the same run (no prompts), each chunk is sent as soon as it is
 * written. Nothing on the remote of its own, so nothing to undo.
 */
import crypto from 'node:crypto';
import { packInputId, packToChunks, type ChunkInfo } from '../../../lib/archive/pack.ts';
import { packDirsOf } from '../../../lib/archive/pack-ahead.ts';
import { UserError } from '../../../lib/common/errors.ts';
import { done } from '../../../lib/engine/runner.ts';
import type { Step } from '../../../lib/engine/step.ts';
import { formatBytes } from '../../../lib/common/units.ts';
import { usePackedArchive, type DeployCtx, type DeployPlanCtx, type PackedArchive } from '../context.ts';
import { estimatedArchiveBytes } from '../../../lib/report/transfer-progress.ts';
import { openShipper, recordShipped } from './upload.ts';

type PackageLocal = { chunksDir: string | undefined };

export const packageStep: Step<DeployCtx, DeployPlanCtx, PackedArchive, PackageLocal> = {
  name: 'package',
  title: 'package: tar + gzip into checksummed chunks',
  needs: ['manifest'],
  needsLocal: ['manifest'],
  undoText: 'nothing on the remote (local work files only)',

  async run(c, progress) {
    const { o } = c;
    const total = c.summary.source.bytes;
    const snapshotDir = c.snapshotDir!;
    const ahead = c.packAhead; // packing started while the preflight ran: its chunks so far go out at once
    let deployId;
    let shipper;
    try {
      deployId = ahead ? await ahead.inputId : await packInputId(snapshotDir, o.chunkSize, undefined, o.signal);
      // Chunks go out as soon as each is written, when the upload step follows in this run.
      shipper = c.earlyUpload ? await openShipper(c, deployId) : undefined;
    } finally {
      // The backup (steps/backup.ts) starts once the first chunk is on the remote (openShipper), or
      // now when no upload follows (or opening it failed).
      if (!shipper) c.uploadUnderway?.settle();
    }
    c.chunksDir = packDirsOf(c.runDir).chunksDir;
    // While chunks leave, the transfer's display (throughput, ETA) is this step's progress, its total estimated until packed.
    const display = shipper && c.transferDisplay;
    let packedInput = 0;
    let written = 0;
    // Each reading may reach a new tenth (plain output): a compressible stretch of input moves the share with no chunk sent.
    const estimate = () => {
      display?.setTotal(estimatedArchiveBytes(written, packedInput, total), true);
      display?.update();
    };
    estimate();
    display?.attach((line) => progress(line, true), () => `${shipper!.done} chunks on the remote; packed ${formatBytes(packedInput)} / ${formatBytes(total)}`);
    let pack;
    try {
      const onProgress = (n: number) => {
        packedInput = n;
        if (display) estimate();
        else progress(`${formatBytes(n)} / ${formatBytes(total)}`);
      };
      const onChunk = shipper ? (ch: ChunkInfo) => { written += ch.size; estimate(); shipper.ship(ch); } : undefined;
      pack = ahead
        ? await ahead.follow({ onProgress, onChunk: (ch) => onChunk?.(ch) })
        : await packToChunks(snapshotDir, c.chunksDir, o.chunkSize, { signal: o.signal, onProgress, onChunk });
    } catch (e) {
      display?.stop();
      await shipper?.finish().catch(() => undefined); // no upload left running behind the unwind
      if (shipper) recordShipped(c, shipper);
      throw e;
    } finally {
      c.uploadUnderway?.settle(); // packed (or failed): the backup waits no longer, whatever the upload's pace
    }
    display?.setTotal(pack.archiveBytes, false);
    display?.stop();
    usePackedArchive(c, {
      deployId, sha256: pack.archiveSha256, bytes: pack.archiveBytes, inputBytes: pack.inputBytes,
      chunks: pack.chunks.map((ch) => ({ name: ch.name, size: ch.size, sha256: ch.sha256 })),
      fileCount: pack.fileList.length, fileListSha256: fileListSha256(pack.fileList),
    });
    c.packedThisRun = true;
    return done(`${pack.chunks.length} chunks, ${formatBytes(pack.archiveBytes)} (${(100 * c.summary.archive!.compressionRatio).toFixed(0)}% of ${formatBytes(pack.inputBytes)})` +
      (shipper ? `; ${shipper.done} already uploaded while packing` : ''));
  },

  plan(p) {
    return {
      commands: [p.local('tar + gzip the snapshot into checksummed chunks',
        [...p.cli, 'pack', '--dir', p.snapshotDir, '--out', p.chunksDir, '--chunk-size', String(p.o.chunkSize)],
        `archive_sha256=${p.packed.sha256} chunks=${p.packed.chunks.length} (another sha256: the source changed since this plan; the reassemble check will refuse it)`)],
      notes: [],
    };
  },

  result: {
    save: (c) => c.packed!,
    parse: checkedPackedArchive,
    load: usePackedArchive,
  },

  local: {
    save: (c) => ({ chunksDir: c.chunksDir }),
    workFiles: {
      key: 'chunksDir' satisfies keyof PackageLocal,
      what: (runId) => `the chunks run ${runId} packed`,
      redo: 'pack them again with --from manifest',
      use: (c, dir) => { c.chunksDir = dir; },
    },
  },
};

/** sha256 of the archive's regular-file list, one path a line (what the reassemble step compares). */
export function fileListSha256(files: string[]): string {
  return crypto.createHash('sha256').update(files.map((f) => `${f}\n`).join('')).digest('hex');
}

/**
 * A recorded package result, its ids checked: the deploy id names the remote incoming and trash
 * dirs (removed by the cleanup) and the chunk names files in them, so neither may be a path.
 */
function checkedPackedArchive(r: unknown): PackedArchive {
  const p = r as Partial<PackedArchive> | null;
  const hex = (v: unknown, n: number) => typeof v === 'string' && new RegExp(`^[0-9a-f]{${n}}$`).test(v);
  const ok = p && hex(p.deployId, 16) && hex(p.sha256, 64) && Array.isArray(p.chunks) && p.chunks.length > 0 &&
    p.chunks.every((ch) => /^chunk-\d{6,}$/.test(String(ch?.name)) && hex(ch.sha256, 64) && Number.isSafeInteger(ch.size));
  if (!ok) throw new UserError('the recorded package result (deploy id, chunk names, checksums) is not valid; start again with --from manifest');
  return {
    deployId: p.deployId!, sha256: p.sha256!, bytes: Number(p.bytes), inputBytes: Number(p.inputBytes),
    chunks: p.chunks!.map((ch) => ({ name: ch.name, size: ch.size, sha256: ch.sha256 })), fileCount: Number(p.fileCount), fileListSha256: String(p.fileListSha256),
  };
}
