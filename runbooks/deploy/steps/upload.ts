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
import { TransferProgress, transferLine, type TransferReading } from '../../../lib/report/transfer-progress.ts';
import { incomingOf, recordOf, type DeployCtx, type DeployPlanCtx, type PackedArchive } from '../context.ts';

type UploadResult = { method: string; chunksSent: number; chunksSkipped: number; bytesSent: number };

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
    // Throughput and ETA: in the task list once a second, in plain output once per tenth of the bytes.
    const reading = (s: ChunkShipper): TransferReading => ({
      doneBytes: s.bytesSent + s.bytesSkipped, sentBytes: s.bytesSent, totalBytes: packed.bytes, elapsedMs: performance.now() - s.openedAt,
    });
    const show = (s: ChunkShipper) => `${transferLine(reading(s))}; ${s.done}/${packed.chunks.length} chunks (${s.chunksSkipped} already there)`;
    let ticker: NodeJS.Timeout | undefined;
    if (o.output === 'tty') {
      const live = shipper;
      progress(show(live), true);
      ticker = setInterval(() => progress(show(live), true), 1000);
      c.shipProgress = undefined;
    } else if (o.output === 'plain') {
      const plain = new TransferProgress();
      const maybe = (s: ChunkShipper) => { if (plain.plainLine(reading(s))) progress(show(s), true); };
      maybe(shipper);
      c.shipProgress = maybe;
    }
    try {
      await shipper.finish();
    } finally {
      clearInterval(ticker);
    }
    Object.assign(c.summary.upload, { chunksSent: shipper.chunksSent, chunksSkipped: shipper.chunksSkipped, bytesSent: shipper.bytesSent });
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
      return { method: typeof r.method === 'string' ? r.method : '', chunksSent: n(r.chunksSent), chunksSkipped: n(r.chunksSkipped), bytesSent: n(r.bytesSent) };
    },
    load() {
      // Nothing later steps use: the summary reports this run's own upload.
    },
  },
};

/** The chunk sender of this run, its incoming dir listed and the uploader begun. */
export async function openShipper(c: DeployCtx, deployId: string): Promise<ChunkShipper> {
  const { o } = c;
  const shipper = new ChunkShipper(o.host, o.uploader, incomingDir(c.layout, deployId), deployId, o.uploadConcurrency, o.signal, (s) => c.shipProgress?.(s));
  await shipper.open();
  c.shipper = shipper;
  return shipper;
}

/** A resumed upload sends the chunks a recorded run packed: they must still be there, unchanged. */
async function checkKeptChunks(p: PackedArchive, chunksDir: string): Promise<void> {
  const kept = await readPackManifest(chunksDir).catch(() => null);
  if (!kept || kept.archiveSha256 !== p.sha256) {
    throw new UserError(`upload needs the chunks packed by the recorded run in ${chunksDir}, which are gone or changed; start again with --from manifest`);
  }
}
