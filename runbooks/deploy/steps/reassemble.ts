/**
 * 6. reassemble: the extraction the remote extractor did while the chunks arrived (its sha256,
 * tar status and chunk count checked) moved to NAME.new; without a clean one, the chunks
 * concatenated and extracted into NAME.new while their sha256 is computed. A wrong sha256 or
 * file list fails; then NAME.new gets its data id. The three (extraction, file list check, id) are
 * one remote command: the id is written only after both checks passed on the remote. Undo: remove
 * NAME.new, only while NAME is there, no swap is unfinished and it holds this run's data.
 */
import { parseKv, reassembleScript } from '../../../lib/remote/scripts.ts';
import { done } from '../../../lib/engine/runner.ts';
import { armUndo, type Step } from '../../../lib/engine/step.ts';
import { chainScripts, runChain } from '../../../lib/remote/chain.ts';
import { UserError } from '../../../lib/common/errors.ts';
import { utcStamp } from '../../../lib/remote/layout.ts';
import { archiveDataId, isDataId, writeDataIdScript } from '../../../lib/volume/data-id.ts';
import { removeUnusedNext } from '../../../lib/volume/deploy-swap.ts';
import { checkExtractedFilesScript } from '../../../lib/volume/extracted-files.ts';
import { incomingOf, nextDataIdOf, packedOf, recordOf, type DeployCtx, type DeployFacts, type DeployPlanCtx } from '../context.ts';

/** The data id stamped into NAME.new (absent in a result recorded before ids). */
type ReassembleResult = { dataId?: string };

const scripts = {
  reassemble(f: DeployFacts) {
    const packed = packedOf(f);
    return reassembleScript(f.layout, incomingOf(f), packed.sha256, packed.chunks.map((ch) => ch.name));
  },
  /** NAME.new's regular files, as the source snapshot listed them. */
  checkFiles(f: DeployFacts) {
    const packed = packedOf(f);
    return checkExtractedFilesScript(f.layout.next, packed.fileCount, packed.fileListSha256);
  },
  /** The data's identity, once its content is checked: the swap and every later command go by it. */
  stampId: (f: DeployFacts) => writeDataIdScript(f.layout.next, nextDataIdOf(f)),
  /**
   * The three in one remote command (one round trip), in this order: the archive's sha256 (in the
   * extraction), then the file list, then the id; a failure stops there, with no id written.
   */
  all: (f: DeployFacts) => chainScripts('reassemble and extract, check the file list, write the data id',
    [scripts.reassemble(f), scripts.checkFiles(f), scripts.stampId(f)]),
};

export const reassemble: Step<DeployCtx, DeployPlanCtx, ReassembleResult> = {
  name: 'reassemble',
  title: 'reassemble: verify the archive, extract to NAME.new',
  needs: ['package', 'upload'],
  undoText: 'remove NAME.new',

  async run(c) {
    const { o, layout } = c;
    const packed = packedOf(c);
    armUndo(c.stack, reassemble, c); // a half-extracted NAME.new goes too
    // Unique per extraction: the same archive extracted again by the same run (a finished run's
    // steps run again) is other data than the copy of it already live. Known before the command
    // that writes it: the undo then also knows a NAME.new stamped by a command whose answer was lost.
    c.nextId = archiveDataId(packed.sha256, c.runId, utcStamp(c.now()));
    const chain = scripts.all(c);
    // A refusal of the id's write (NAME.new no directory) is its one line, as when it ran alone.
    const kv = parseKv((await runChain(o.host, chain, { signal: o.signal, refusing: [chain.parts[2]!], volume: layout.volume })).stdout);
    // The remote checked the list before the id; what it printed must say the same.
    if (Number(kv.get('files')) !== packed.fileCount || kv.get('list_sha256') !== packed.fileListSha256) {
      throw new Error(`extracted file list on the remote differs from the source snapshot (${kv.get('files')} files, expected ${packed.fileCount})`);
    }
    const how = kv.get('extracted') === 'while-uploading' ? ' (extracted while the chunks arrived)' : '';
    return done(`${packed.fileCount} files in ${layout.next}${how}`);
  },

  async undo(c) {
    if (!(await removeUnusedNext(c.o.host, c.layout, nextDataIdOf(c)))) c.summary.warnings.push(`${c.layout.next} kept: the volume still needs it`);
  },

  plan(p) {
    return {
      commands: [p.remote(scripts.all(p), `files=${p.packed.fileCount} list_sha256=${p.packed.fileListSha256}`)],
      notes: [],
    };
  },

  result: {
    save: (c) => (c.nextId ? { dataId: c.nextId } : {}),
    parse(raw) {
      const r = recordOf(raw, 'reassemble');
      if (r.dataId === undefined) return {};
      if (!isDataId(r.dataId as string)) throw new UserError('the recorded reassemble result (the data id) is not valid; start again with --from reassemble');
      return { dataId: r.dataId as string };
    },
    load(c, r) {
      // NAME.new of the recorded run: its undo is armed by the runner.
      if (r.dataId) c.nextId = r.dataId;
    },
  },
};
