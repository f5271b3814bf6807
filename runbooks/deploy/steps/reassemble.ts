/**
 * 6. reassemble: the chunks concatenated and extracted into NAME.new while their sha256 is
 * computed; a wrong sha256 or file list fails. Undo: remove NAME.new.
 */
import { parseKv, reassembleScript } from '../../../lib/remote-scripts.ts';
import { done } from '../../../lib/runbook-runner.ts';
import { armUndo, type Step } from '../../../lib/runbook-step.ts';
import { remoteScript } from '../../../lib/shell.ts';
import { incomingOf, packedOf, type DeployCtx, type DeployFacts, type DeployPlanCtx } from '../context.ts';

type ReassembleResult = Record<string, never>;

const scripts = {
  reassemble(f: DeployFacts) {
    const packed = packedOf(f);
    return reassembleScript(f.layout, incomingOf(f), packed.sha256, packed.chunks.map((ch) => ch.name));
  },
  removeNext: (f: DeployFacts) => remoteScript('remove NAME.new', 'rm -rf "$1"', [f.layout.next]),
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
    const kv = parseKv((await o.host.run(scripts.reassemble(c), { signal: o.signal })).stdout);
    if (Number(kv.get('files')) !== packed.fileCount || kv.get('list_sha256') !== packed.fileListSha256) {
      throw new Error(`extracted file list on the remote differs from the source snapshot (${kv.get('files')} files, expected ${packed.fileCount})`);
    }
    return done(`${packed.fileCount} files in ${layout.next}`);
  },

  async undo(c) {
    await c.o.host.run(scripts.removeNext(c));
  },

  plan(p) {
    return {
      commands: [p.remote(scripts.reassemble(p), `files=${p.packed.fileCount} list_sha256=${p.packed.fileListSha256}`)],
      notes: [],
    };
  },

  result: {
    save: () => ({}),
    parse: () => ({}),
    load() {
      // NAME.new of the recorded run: its undo is armed by the runner.
    },
  },
};
