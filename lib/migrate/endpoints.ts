/**
 * `--source-url` / `--target-url` to an endpoint: a Chroma server (http/https), a local persist
 * directory (served by an embedded Chroma server the tool starts: on a copy when it is the
 * source, so the user's directory is never opened by a server), or a `.jsonl` export file.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { snapshotSource } from '../archive/snapshot.ts';
import { startChromaServer, type ChromaServer } from '../chroma/server.ts';
import { UserError } from '../errors.ts';
import { ChromaEndpoint } from './chroma-endpoint.ts';
import { JsonlEndpoint } from './jsonl-endpoint.ts';
import { isQdrantUrl, QdrantEndpoint } from './qdrant-endpoint.ts';
import type { MigrationSink, MigrationSource } from './types.ts';

export type Endpoint = MigrationSource & MigrationSink;

export type EndpointKind = 'chroma' | 'qdrant' | 'dir' | 'jsonl';

export function endpointKind(flag: string, value: string): EndpointKind {
  if (isQdrantUrl(value)) {
    try {
      new URL(value.replace(/^qdrant\+/i, ''));
    } catch {
      throw new UserError(`${flag} ${value}: not a valid URL; use e.g. qdrant+http://127.0.0.1:6333`);
    }
    return 'qdrant';
  }
  if (/^https?:\/\//i.test(value)) {
    try {
      new URL(value);
    } catch {
      throw new UserError(`${flag} ${value}: not a valid URL; use e.g. http://127.0.0.1:8000`);
    }
    return 'chroma';
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    throw new UserError(`${flag} ${value}: unknown scheme; use http(s)://HOST:PORT (Chroma), qdrant+http(s)://HOST:PORT, a persist directory or a .jsonl file`);
  }
  if (value.endsWith('.jsonl')) return 'jsonl';
  return 'dir';
}

/** Open the source read-only. */
export async function openSource(value: string, o: { signal?: AbortSignal } = {}): Promise<Endpoint> {
  const flag = '--source-url';
  switch (endpointKind(flag, value)) {
    case 'chroma': {
      const e = new ChromaEndpoint(value.replace(/\/+$/, ''));
      await e.connect(flag);
      return e;
    }
    case 'qdrant': {
      const e = new QdrantEndpoint(value);
      await e.connect(flag);
      return e;
    }
    case 'jsonl': {
      const e = new JsonlEndpoint(path.resolve(value));
      await e.openForReading(flag);
      return e;
    }
    case 'dir': {
      const dir = path.resolve(value);
      const st = await fs.stat(path.join(dir, 'chroma.sqlite3')).catch(() => null);
      if (!st) throw new UserError(`${flag} ${value}: no chroma.sqlite3 there; pass a Chroma persist directory, a server URL or a .jsonl export`);
      const copy = await fs.mkdtemp(path.join(os.tmpdir(), 'chroma-ferry-source-'));
      try {
        await snapshotSource(dir, path.join(copy, 'db'), { signal: o.signal });
        return await servedDir(path.join(copy, 'db'), `${value} (a copy, served locally)`, copy);
      } catch (e) {
        await fs.rm(copy, { recursive: true, force: true });
        throw e;
      }
    }
  }
}

/** Open the target; a directory is created if needed and served by an embedded Chroma server. */
export async function openTarget(value: string, o: { resume: boolean; dryRun: boolean }): Promise<{ endpoint: Endpoint; prepareWrite(touched: string[]): Promise<void> }> {
  const flag = '--target-url';
  switch (endpointKind(flag, value)) {
    case 'chroma': {
      const e = new ChromaEndpoint(value.replace(/\/+$/, ''));
      await e.connect(flag);
      return { endpoint: e, prepareWrite: async () => {} };
    }
    case 'qdrant': {
      const e = new QdrantEndpoint(value);
      await e.connect(flag);
      return { endpoint: e, prepareWrite: async () => {} };
    }
    case 'jsonl': {
      const e = new JsonlEndpoint(path.resolve(value));
      if (!o.resume && !o.dryRun && (await fs.stat(e.file).then(() => true, () => false))) {
        throw new UserError(`${flag} ${value} already exists: choose a new file, remove it, or pass --resume to continue writing it`);
      }
      return { endpoint: e, prepareWrite: (touched) => e.openForWriting({ resume: o.resume, touched }) };
    }
    case 'dir': {
      const dir = path.resolve(value);
      if (o.dryRun && !(await fs.stat(dir).then(() => true, () => false))) {
        // Nothing to start for a dry run on a new directory: an empty in-memory view.
        const empty = await fs.mkdtemp(path.join(os.tmpdir(), 'chroma-ferry-dry-target-'));
        return { endpoint: await servedDir(empty, `${value} (new; dry run)`, empty), prepareWrite: async () => {} };
      }
      await fs.mkdir(dir, { recursive: true });
      return { endpoint: await servedDir(dir, `${value} (served locally)`), prepareWrite: async () => {} };
    }
  }
}

async function servedDir(dir: string, label: string, removeAfter?: string): Promise<Endpoint> {
  let server: ChromaServer;
  try {
    server = await startChromaServer({ path: dir });
  } catch (e) {
    throw new UserError(`${label}: the embedded Chroma server did not start on it (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`);
  }
  const e = new ChromaEndpoint(server.url, label);
  const close = e.close.bind(e);
  e.close = async () => {
    await close();
    await server.stop();
    if (removeAfter) await fs.rm(removeAfter, { recursive: true, force: true });
  };
  return e;
}
