/**
 * 5. upload: the chunks into .ferry/incoming/<deploy id>, each checked there (size + sha256)
 * before it gets its name; chunks already there are not sent again. Undo: none, the uploaded
 * chunks are kept so that a rerun resumes.
 */
import path from 'node:path';
import { readPackManifest } from '../../../lib/archive/pack.ts';
import { UserError } from '../../../lib/common/errors.ts';
import { planCommand } from '../../../lib/engine/plan.ts';
import { incomingDir } from '../../../lib/remote/layout.ts';
import { openIncomingScript } from '../../../lib/remote/extractor.ts';
import { done } from '../../../lib/engine/runner.ts';
import type { Step } from '../../../lib/engine/step.ts';
import { formatBytes } from '../../../lib/common/units.ts';
import { ChunkShipper, chunkArrival } from '../../../lib/transfer/chunk-shipper.ts';
import { TransferDisplay } from '../../../lib/report/transfer-progress.ts';
import { incomingOf, recordOf, type DeployCtx, type DeployPlanCtx, type PackedArchive } from '../context.ts';

type UploadResult = { method: string; chunksSent: number; chunksSkipped: number; bytesSent: number; bytesSkipped: number };

export const upload: Step<DeployCtx, DeployPlanCtx, UploadResult> = {
  name: 'upload',
  title: 'upload: chunks to the remote, each verified',
  needs: ['package'],
  needsLocal: ['package'],
  undoText: 'none: uploaded chunks are kept so that a rerun resumes',

  async run(c, progress) {
    const { o } = c;
    const packed = c.packed!;
    const chunksDir = c.chunksDir!;
    if (!c.packedThisRun) await checkKeptChunks(packed, chunksDir);
    let shipper = c.shipper;
    if (!shipper) {
      shipper = await openShipper(c, packed.deployId);
      for (const [index, ch] of packed.chunks.entries()) shipper.ship({ ...ch, index, file: path.join(chunksDir, ch.name) });
    }
    // The transfer's display (begun while packing when chunks left then): throughput and ETA over the whole archive.
    const s = shipper;
    const display = c.transferDisplay!;
    display.setTotal(packed.bytes, false);
    display.attach((line) => progress(line, true), () => `${s.done}/${packed.chunks.length} chunks (${s.chunksSkipped} already there)`);
    try {
      await shipper.finish();
    } finally {
      display.stop();
      recordShipped(c, shipper);
    }
    const { chunksSent, chunksSkipped, bytesSent } = c.summary.upload;
    const extra = o.uploader.uploadNote?.();
    return done(`${chunksSent} sent (${formatBytes(bytesSent)}), ${chunksSkipped} already on the remote${extra ? `; ${extra}` : ''}`);
  },

  plan(p) {
    const incoming = incomingOf(p);
    return {
      commands: [
        p.remote(openIncomingScript(incoming)),
        ...p.packed.chunks.flatMap((ch) => {
          const { partial, accept } = chunkArrival(incoming, ch);
          const file = path.join(p.chunksDir, ch.name);
          if (p.o.uploader.renderChecked) return [planCommand(`upload and verify ${ch.name}`, p.o.uploader.renderChecked(file, accept), p.o.host.label)];
          return [
            ...p.o.uploader.render(path.join(p.chunksDir, ch.name), partial).map((r) => planCommand(`upload ${ch.name}`, r, p.o.host.label)),
            p.remote(accept),
          ];
        }),
      ],
      notes: p.o.uploader.method === 's3'
        ? ['--upload s3: the bridge\'s presigned URLs are made at run time and never printed; by hand, the chunks go by the host\'s own put']
        : [],
    };
  },

  result: {
    save: (c) => ({ ...c.summary.upload }),
    parse(raw) {
      const r = recordOf(raw, 'upload');
      const n = (v: unknown) => (Number.isSafeInteger(v) ? (v as number) : 0);
      return { method: typeof r.method === 'string' ? r.method : '', chunksSent: n(r.chunksSent), chunksSkipped: n(r.chunksSkipped), bytesSent: n(r.bytesSent), bytesSkipped: n(r.bytesSkipped) };
    },
    load() {
      // Nothing later steps use: the summary reports this run's own upload.
    },
  },
};

/** The chunk sender of this run, its incoming dir listed and the uploader begun, with the transfer's progress display. */
export async function openShipper(c: DeployCtx, deployId: string): Promise<ChunkShipper> {
  const { o } = c;
  const display = new TransferDisplay(o.output, () => ({ doneBytes: shipper.bytesSent + shipper.bytesSkipped, sentBytes: shipper.bytesSent, elapsedMs: performance.now() - shipper.openedAt }));
  const shipper = new ChunkShipper(o.host, o.uploader, incomingDir(c.layout, deployId), deployId, o.uploadConcurrency, o.signal, () => {
    c.uploadUnderway?.settle(); // a chunk is on the remote: the backup's tar + gzip starts now (steps/backup.ts)
    display.update();
  });
  c.transferDisplay = display;
  await shipper.open();
  c.shipper = shipper;
  return shipper;
}

/** What the shipper sent and found already there, in the summary (also when the upload failed part-way). */
export function recordShipped(c: DeployCtx, s: ChunkShipper): void {
  Object.assign(c.summary.upload, { chunksSent: s.chunksSent, chunksSkipped: s.chunksSkipped, bytesSent: s.bytesSent, bytesSkipped: s.bytesSkipped });
}

/** A resumed upload sends the chunks a recorded run packed: they must still be there, unchanged. */
async function checkKeptChunks(p: PackedArchive, chunksDir: string): Promise<void> {
  const kept = await readPackManifest(chunksDir).catch(() => null);
  if (!kept || kept.archiveSha256 !== p.sha256) {
    throw new UserError(`upload needs the chunks packed by the recorded run in ${chunksDir}, which are gone or changed; start again with --from manifest`);
  }
}
