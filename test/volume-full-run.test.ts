/**
 * A full disk says so everywhere (issue 15, 7), on real tmpfs mounts (`local:` targets, the CLI as
 * a child): the deploy preflight's space check says "volume full: N MiB free, needed M MiB" like
 * every other full-volume line; a volume (or local state dir) that fills part-way through a deploy
 * makes the runbook state write fail, and the run still ends with its summary (text and --json), a
 * true outcome and that line, leaving no temp file on either side. The volume fills at a known
 * point: an `mv` wrapper first on PATH fills the chosen filesystem right after the reassemble
 * stamps NAME.new's data id (the step's last remote command, so its state write comes next). A
 * first deploy (no live dir) has no backup running alongside: nothing else writes meanwhile.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { runCli, sampleDbCopy, SOURCE_SPEC, TEST_STATE_DIR, type CliResult } from './helpers/deploy-env.ts';
import { mountTmpfs, unmount, which } from './unit/local-volume.ts';

/** Every path under `dir` whose name says temp file (`*.tmp*`, `*.partial`), relative to `dir`. */
async function tempFilesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])) {
    if (/\.tmp|\.partial$/.test(e.name)) out.push(path.relative(dir, path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)));
  }
  return out;
}

function assertNoStackNorRawErrors(r: CliResult): void {
  assert.doesNotMatch(r.stderr + r.stdout, /\n\s+at |write error|No space left|I\/O error|ferry_refusal/, r.stderr + r.stdout);
}

describe('a full volume says so, and a run it stops still ends with its summary (tmpfs)', () => {
  let root = '';
  let vol = '';
  let smallState = '';
  let source = '';
  let bin = '';
  let fault = '';
  const mounted: string[] = [];
  let skip: string | undefined;

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'ferry-full-run-'));
    vol = path.join(root, 'target', 'vol');
    smallState = path.join(root, 'state-small');
    await fs.mkdir(vol, { recursive: true });
    await fs.mkdir(smallState);
    for (const [dir, kib] of [[vol, 32 * 1024], [smallState, 1024]] as const) {
      skip ??= await mountTmpfs(dir, kib);
      if (!skip) mounted.push(dir);
    }
    if (skip && process.env.CI === 'true' && process.getuid?.() === 0) throw new Error(`cannot mount a tmpfs under CI=true as root: ${skip}`);
    if (skip) process.stderr.write(`\n!!! SKIPPING the full-volume run tests: ${skip}\n\n`);
    source = path.join(root, 'source');
    await sampleDbCopy(source, SOURCE_SPEC, 11);
    // mv as the remote side runs it; armed (FAULT holds a dir), the rename of NAME.new's id file
    // into place is done, then that dir's filesystem is filled to the last block.
    fault = path.join(root, 'fill-at-stamp');
    bin = path.join(root, 'bin');
    await fs.mkdir(bin);
    await fs.writeFile(path.join(bin, 'mv'), [
      '#!/bin/sh',
      'last=""; for a in "$@"; do last=$a; done',
      `f='${fault}'`,
      'if [ -f "$f" ]; then',
      '  case $last in */chroma_db.new/.ferry-data-id)',
      `    '${which('mv')}' "$@"; rc=$?`,
      '    read -r dir < "$f"; rm -f "$f"',
      '    head -c 1073741824 /dev/zero > "$dir/filler" 2>/dev/null',
      '    echo "$rc" > "$f.fired"',
      '    exit "$rc" ;;',
      '  esac',
      'fi',
      `exec '${which('mv')}' "$@"`,
      '',
    ].join('\n'), { mode: 0o755 });
  });
  afterEach(async () => {
    for (const dir of mounted) await fs.rm(path.join(dir, 'filler'), { force: true });
    await fs.rm(fault, { force: true });
    await fs.rm(`${fault}.fired`, { force: true });
  });
  after(async () => {
    for (const dir of mounted) unmount(dir);
    await fs.rm(root, { recursive: true, force: true });
  });

  const target = () => `local:${path.join(root, 'target')}`;
  const deploy = (extra: string[], env: Record<string, string> = {}) =>
    runCli(['deploy', '--source', source, '--target', target(), '--volume', '/vol', '--no-verify', '--yes', ...extra], { env: { PATH: `${bin}:${process.env.PATH}`, ...env } });

  async function emptyVolume(): Promise<void> {
    for (const e of await fs.readdir(vol)) await fs.rm(path.join(vol, e), { recursive: true, force: true });
  }

  it('preflight: less room than archive + extraction + backup is "volume full: N MiB free, needed M MiB", with the --keep-backups advice; exit 2, nothing written', async (t) => {
    if (skip) return t.skip(skip);
    await emptyVolume();
    const st = await fs.statfs(vol);
    await execa('sh', ['-c', 'head -c "$1" /dev/zero > "$2"', 'fill', String(st.bavail * st.bsize - 1024 * 1024), path.join(vol, 'filler')]);
    const r = await deploy(['--json']);
    assert.equal(r.code, 2, r.stderr + r.stdout);
    assert.equal(r.stdout, '', 'a refusal, no summary');
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^chroma-ferry: volume full: 1 MiB free, needed \d+ MiB \(.*\/vol on local:.*: archive \+ extraction \+ backup\); free space or lower --keep-backups$/);
    assertNoStackNorRawErrors(r);
    assert.deepEqual(await fs.readdir(vol), ['filler'], 'nothing written to the volume');
  });

  it('the remote state write fails after the reassemble: the --json summary says failed with the volume-full line; no temp file; lock released', async (t) => {
    if (skip) return t.skip(skip);
    await emptyVolume();
    await fs.writeFile(fault, `${vol}\n`);
    const r = await deploy(['--json']);
    assert.ok(await fs.stat(`${fault}.fired`).catch(() => null), 'the volume was filled after the reassemble');
    assert.equal(r.code, 1, r.stderr + r.stdout);
    assert.ok(r.json, `a JSON summary on stdout: ${r.stdout}\n${r.stderr}`);
    assert.equal(r.json.ok, false);
    assert.equal(r.json.rolledBack, false);
    assert.match(r.json.error, /^volume full: 0 MiB free, needed 1 MiB \(.*\/vol on local:.*\); free space there and run again$/);
    const status = Object.fromEntries(r.json.steps.map((s: { name: string; status: string }) => [s.name, s.status]));
    assert.equal(status.upload, 'done');
    // The write that fails records "reassemble done, swap running" (one write): the swap could not start.
    assert.equal(status.reassemble, 'done');
    assert.equal(status.swap, 'failed');
    assertNoStackNorRawErrors(r);
    assert.deepEqual(await tempFilesUnder(vol), [], 'no temp file on the volume');
    assert.deepEqual(await tempFilesUnder(TEST_STATE_DIR), [], 'nor in the local state dir');
    await assert.rejects(fs.access(path.join(vol, '.ferry', 'lock')), 'the lock is released');
    await assert.rejects(fs.access(path.join(vol, 'chroma_db')), 'nothing was swapped in');
  });

  it('the local state write fails (the state dir fills up): the text summary says FAILED with the volume-full line; no temp file', async (t) => {
    if (skip) return t.skip(skip);
    await emptyVolume();
    await fs.writeFile(fault, `${smallState}\n`);
    const r = await deploy([], { CHROMA_FERRY_STATE_DIR: smallState });
    assert.ok(await fs.stat(`${fault}.fired`).catch(() => null), 'the state dir was filled after the reassemble');
    assert.equal(r.code, 1, r.stderr + r.stdout);
    assert.match(r.stdout, /^FAILED {2}/m, r.stdout + r.stderr);
    const escaped = smallState.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    assert.match(r.stdout, new RegExp(`^ {2}error: volume full: 0 MiB free, needed 1 MiB \\(${escaped}\\); free space there and run again$`, 'm'));
    assert.match(r.stdout, /^ {4}swap +failed/m);
    assertNoStackNorRawErrors(r);
    assert.deepEqual(await tempFilesUnder(smallState), [], 'no temp file in the local state dir');
    assert.deepEqual(await tempFilesUnder(vol), [], 'nor on the volume');
    await assert.rejects(fs.access(path.join(vol, '.ferry', 'lock')), 'the lock is released');
  });
});
