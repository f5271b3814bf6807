/**
 * `--source-url` / `--target-url` to an endpoint: a Chroma server (http/https), a local persist
 * directory (served by an embedded Chroma server the tool starts: on a copy when it is the
 * source, so the user's directory is never opened by a server), or a `.jsonl` export file.
 *
 * A location is read as written, never guessed: a server needs its scheme (`localhost:8000` is
 * refused with `did you mean http://localhost:8000?`), URLs hold no credentials (the token comes
 * from the environment, lib/chroma/api-token.ts), and a persist dir that does not exist yet is
 * only created when named as an explicit path (`./dir`, `../dir`, `/abs/dir`, `file:dir`).
 */
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { snapshotSource } from '../archive/snapshot.ts';
import { tokenVariables, type ChromaSide } from '../chroma/api-token.ts';
import { startChromaServer, type ChromaServer } from '../chroma/server.ts';
import { UserError } from '../common/errors.ts';
import { redactUrlCredentials } from '../report/secrets.ts';
import { bareHostPort, looksLikeServerName, parseHttpUrl } from '../locations/server-url.ts';
import { ChromaEndpoint } from './chroma-endpoint.ts';
import { JsonlEndpoint } from './jsonl-endpoint.ts';
import { isQdrantUrl, QdrantEndpoint } from './qdrant-endpoint.ts';
import type { MigrationSink, MigrationSource } from './types.ts';

export type Endpoint = MigrationSource & MigrationSink;

export type EndpointKind = 'chroma' | 'qdrant' | 'dir' | 'jsonl';

export interface EndpointSpec {
  kind: EndpointKind;
  /** chroma: the server URL (no trailing /); qdrant: the value as given; dir and jsonl: the absolute path. */
  location: string;
}

export interface EndpointRole {
  /** Whose token a Chroma server gets (and which variable messages name). */
  side: ChromaSide;
  /** The location may be a persist dir that does not exist yet (then it must be an explicit path). */
  mayCreate?: boolean;
}

/** Read the flag's value as an endpoint; refused in one line when it is ambiguous or holds credentials. */
export function parseEndpoint(flag: string, value: string, role: EndpointRole): EndpointSpec {
  if (isQdrantUrl(value)) {
    parseHttpUrl(flag, value.replace(/^qdrant\+/i, ''), { example: 'qdrant+http://127.0.0.1:6333', instead: 'put the API key in QDRANT_API_KEY', shownAs: value });
    return { kind: 'qdrant', location: value };
  }
  if (/^https?:\/\//i.test(value)) {
    parseHttpUrl(flag, value, { example: 'http://127.0.0.1:8000', instead: `put the token in ${tokenVariables(role.side)} (sent as the x-chroma-token header)` });
    return { kind: 'chroma', location: value.replace(/\/+$/, '') };
  }
  if (/^file:/i.test(value)) return localSpec(flag, value, fileLocation(flag, value));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    throw new UserError(`${flag} ${redactUrlCredentials(value)}: unknown scheme; use http(s)://HOST:PORT (Chroma), qdrant+http(s)://HOST:PORT, a persist directory or a .jsonl file`);
  }
  const bare = bareHostPort(value);
  if (bare) {
    if (bare.userinfo !== undefined) {
      throw new UserError(`${flag} ***@${bare.host}:${bare.port}: credentials in a URL are refused (they would be printed and logged); put the token in ${tokenVariables(role.side)} and use http://${bare.host}:${bare.port}`);
    }
    throw new UserError(`${flag} ${value}: did you mean http://${bare.host}:${bare.port}? A server URL needs its scheme (a local directory of that name: ./${value})`);
  }
  const spec = localSpec(flag, value, value);
  if (spec.kind === 'dir' && !isExplicitPath(value) && !fsSync.existsSync(spec.location)) {
    if (looksLikeServerName(value)) {
      throw new UserError(`${flag} ${value}: did you mean http://${value}:8000? A server URL needs its scheme (a local directory of that name: ./${value})`);
    }
    if (role.mayCreate) {
      throw new UserError(`${flag} ${value}: no such directory here; to create a new persist dir name it as a path: ./${value}, /abs/path or file:${value}`);
    }
  }
  return spec;
}

/** The kind of endpoint a flag's value names (see parseEndpoint). */
export function endpointKind(flag: string, value: string, role: EndpointRole = { side: 'source' }): EndpointKind {
  return parseEndpoint(flag, value, role).kind;
}

/** `./x`, `../x`, `/x`, `.`, `..`: a path by its look (a bare word could be a mistyped server). */
function isExplicitPath(value: string): boolean {
  return /^(?:\/|\.\.?(?:\/|$))/.test(value) || /^file:/i.test(value);
}

function fileLocation(flag: string, value: string): string {
  if (!/^file:\/\//i.test(value)) return value.slice('file:'.length); // file:dir, file:/abs/dir
  try {
    return fileURLToPath(value);
  } catch {
    throw new UserError(`${flag} ${redactUrlCredentials(value)}: not a local file URL; use file:///ABS/PATH, file:./dir or a plain path`);
  }
}

function localSpec(flag: string, value: string, p: string): EndpointSpec {
  if (p === '') throw new UserError(`${flag} ${value}: no path after file:`);
  return { kind: p.endsWith('.jsonl') ? 'jsonl' : 'dir', location: path.resolve(p) };
}

/** Open the source read-only (validate opens the new database as a source too: `side` 'target'). */
export async function openSource(value: string, o: { signal?: AbortSignal; side?: ChromaSide } = {}): Promise<Endpoint> {
  const flag = '--source-url';
  const side = o.side ?? 'source';
  const spec = parseEndpoint(flag, value, { side });
  switch (spec.kind) {
    case 'chroma': {
      const e = new ChromaEndpoint(spec.location, spec.location, side);
      await e.connect(flag);
      return e;
    }
    case 'qdrant': {
      const e = new QdrantEndpoint(value);
      await e.connect(flag);
      return e;
    }
    case 'jsonl': {
      const e = new JsonlEndpoint(spec.location);
      await e.openForReading(flag);
      return e;
    }
    case 'dir': {
      const dir = spec.location;
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

export interface OpenedTarget {
  endpoint: Endpoint;
  prepareWrite(touched: string[]): Promise<void>;
  /** The persist dir this call created (absolute), when the target was a new directory. */
  createdDir?: string;
}

/** Open the target; a new directory (named as an explicit path) is created and served by an embedded Chroma server. */
export async function openTarget(value: string, o: { resume: boolean; dryRun: boolean }): Promise<OpenedTarget> {
  const flag = '--target-url';
  const spec = parseEndpoint(flag, value, { side: 'target', mayCreate: true });
  switch (spec.kind) {
    case 'chroma': {
      const e = new ChromaEndpoint(spec.location, spec.location, 'target');
      await e.connect(flag);
      return { endpoint: e, prepareWrite: async () => {} };
    }
    case 'qdrant': {
      const e = new QdrantEndpoint(value);
      await e.connect(flag);
      return { endpoint: e, prepareWrite: async () => {} };
    }
    case 'jsonl': {
      const e = new JsonlEndpoint(spec.location);
      if (!o.resume && !o.dryRun && (await fs.stat(e.file).then(() => true, () => false))) {
        throw new UserError(`${flag} ${value} already exists: choose a new file, remove it, or pass --resume to continue writing it`);
      }
      return { endpoint: e, prepareWrite: (touched) => e.openForWriting({ resume: o.resume, touched }) };
    }
    case 'dir': {
      const dir = spec.location;
      const exists = await fs.stat(dir).then(() => true, () => false);
      if (o.dryRun && !exists) {
        // Nothing to start for a dry run on a new directory: an empty in-memory view.
        const empty = await fs.mkdtemp(path.join(os.tmpdir(), 'chroma-ferry-dry-target-'));
        return { endpoint: await servedDir(empty, `${value} (new; dry run)`, empty), prepareWrite: async () => {} };
      }
      if (!exists) await fs.mkdir(dir, { recursive: true });
      return { endpoint: await servedDir(dir, `${value} (served locally)`), prepareWrite: async () => {}, createdDir: exists ? undefined : dir };
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
