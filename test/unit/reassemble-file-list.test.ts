/**
 * The deploy's reassemble step (runbooks/deploy/steps/reassemble.ts) on a LocalHost volume, with a
 * real archive packed by lib/archive/pack.ts: extraction, file list check and data id are one
 * remote command, and the id is written only when the extracted tree is the snapshot's list.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { packToChunks } from '../../lib/archive/pack.ts';
import { LocalHost } from '../../lib/hosts/local.ts';
import type { RunOptions, RunResult } from '../../lib/hosts/remote-host.ts';
import { RunbookStateStore } from '../../lib/engine/state.ts';
import { ChainPartError } from '../../lib/remote/chain.ts';
import { incomingDir } from '../../lib/remote/layout.ts';
import type { RemoteScript } from '../../lib/remote/shell.ts';
import { HostPutUploader } from '../../lib/transfer/sftp.ts';
import { DATA_ID_FILE } from '../../lib/volume/data-id.ts';
import { FILE_LIST_DIFFERS_EXIT } from '../../lib/volume/extracted-files.ts';
import { newDeployCtx } from '../../runbooks/deploy/index.ts';
import { usePackedArchive, type DeployCtx } from '../../runbooks/deploy/context.ts';
import { fileListSha256 } from '../../runbooks/deploy/steps/package.ts';
import { reassemble } from '../../runbooks/deploy/steps/reassemble.ts';
import { tempVolume, type TempVolume } from './local-volume.ts';

/** A LocalHost that records the title of every script it runs. */
class TitleLog extends LocalHost {
  readonly titles: string[] = [];
  override async run(script: RemoteScript, opts: RunOptions = {}): Promise<RunResult> {
    this.titles.push(script.title);
    return super.run(script, opts);
  }
}

describe('reassemble: extraction, file list and data id in one remote command', () => {
  let v: TempVolume;
  let host: TitleLog;
  let fileList: string[];
  let ctx: DeployCtx;

  beforeEach(async () => {
    v = await tempVolume();
    host = new TitleLog(v.root);
    const source = path.join(v.root, 'source');
    await fs.mkdir(path.join(source, 'segment'), { recursive: true });
    await fs.writeFile(path.join(source, 'chroma.sqlite3'), crypto.randomBytes(4096));
    await fs.writeFile(path.join(source, 'segment', 'data level0.bin'), crypto.randomBytes(2048));
    const chunksDir = path.join(v.root, 'chunks');
    await fs.mkdir(chunksDir);
    const pack = await packToChunks(source, chunksDir, 1024 * 1024);
    fileList = pack.fileList;
    const deployId = '0123456789abcdef';
    const incoming = incomingDir(v.layout, deployId);
    await fs.mkdir(incoming, { recursive: true });
    for (const ch of pack.chunks) await fs.copyFile(ch.file, path.join(incoming, ch.name));
    ctx = newDeployCtx({
      source, host, uploader: new HostPutUploader(host), volume: '/vol', dbDir: 'chroma_db', chunkSize: 1024 * 1024, healthTimeoutMs: 1000,
      keepBackups: 2, uploadConcurrency: 1, workDir: path.join(v.root, 'work'), output: 'json', signal: new AbortController().signal,
    }, { runId: 'a1b2c3d4e5f6', workRoot: path.join(v.root, 'work'), store: new RunbookStateStore(host, v.layout, 'deploy'), earlyUpload: false });
    usePackedArchive(ctx, {
      deployId, sha256: pack.archiveSha256, bytes: pack.archiveBytes, inputBytes: pack.inputBytes,
      chunks: pack.chunks.map((ch) => ({ name: ch.name, size: ch.size, sha256: ch.sha256 })),
      fileCount: fileList.length, fileListSha256: fileListSha256(fileList),
    });
  });
  afterEach(() => v.dispose());

  const idInNext = () => fs.readFile(path.join(v.layout.next, DATA_ID_FILE), 'utf8').then((s) => s.trim(), () => undefined);

  it('the snapshot\'s list: NAME.new extracted and stamped, in one remote command', async () => {
    assert.deepEqual(fileList, ['./chroma.sqlite3', './segment/data level0.bin']);
    const out = await reassemble.run(ctx, () => {});
    assert.equal(out.status, 'done');
    assert.equal(host.titles.length, 1, host.titles.join(', '));
    assert.ok(ctx.nextId);
    assert.equal(await idInNext(), ctx.nextId);
  });

  it('a tree other than the snapshot\'s list: fails on the remote before the id is written', async () => {
    // The snapshot listed one more file than the archive holds.
    const more = [...fileList, './segment/header.bin'].sort();
    usePackedArchive(ctx, { ...ctx.packed!, fileCount: more.length, fileListSha256: fileListSha256(more) });
    const e = await reassemble.run(ctx, () => {}).then(() => assert.fail('reassemble passed'), (err: unknown) => err);
    assert.ok(e instanceof ChainPartError, String(e));
    assert.equal(e.part.title, 'check the extracted file list');
    assert.equal(e.exitCode, FILE_LIST_DIFFERS_EXIT);
    assert.match(e.message, /extracted file list on the remote differs from the source snapshot \(2 files, expected 3\)/);
    assert.equal(host.titles.length, 1);
    // Extracted (the undo removes it), never stamped.
    assert.deepEqual((await fs.readdir(v.layout.next)).sort(), ['chroma.sqlite3', 'segment']);
    assert.equal(await idInNext(), undefined);
  });

  it('same count, other names: fails the same way', async () => {
    const renamed = ['./chroma.sqlite3', './segment/data_level0.bin'];
    usePackedArchive(ctx, { ...ctx.packed!, fileListSha256: fileListSha256(renamed) });
    const e = await reassemble.run(ctx, () => {}).then(() => assert.fail('reassemble passed'), (err: unknown) => err);
    assert.ok(e instanceof ChainPartError && e.exitCode === FILE_LIST_DIFFERS_EXIT, String(e));
    assert.equal(await idInNext(), undefined);
  });
});
