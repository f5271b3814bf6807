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
import { chromaToken, tokenVariables, type ChromaSide } from '../chroma/api-token.ts';
import { chromaAdminFor, chromaClientFor, type ChromaScope } from '../chroma/client.ts';
import { createScope, describeScope, isDefaultScope, missingPart, missingScopeError, resolveScope, scopeFlags, type ScopeChoice } from '../chroma/database-scope.ts';
import { startChromaServer, type ChromaServer } from '../chroma/server.ts';
import { UserError } from '../common/errors.ts';
import { redactUrlCredentials } from '../report/secrets.ts';
import { bareHostPort, looksLikeServerName, parseHttpUrl } from '../locations/server-url.ts';
import { ChromaEndpoint } from './chroma-endpoint.ts';
import { limitsFor, withServerLimits } from './chroma-cloud.ts';
import { JsonlEndpoint } from './jsonl-endpoint.ts';
import { isQdrantUrl, QdrantEndpoint, type QdrantOptions } from './qdrant-endpoint.ts';
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
export async function openSource(value: string, o: { signal?: AbortSignal; side?: ChromaSide; scope?: ScopeChoice } = {}): Promise<Endpoint> {
  const flag = '--source-url';
  const side = o.side ?? 'source';
  const spec = parseEndpoint(flag, value, { side });
  switch (spec.kind) {
    case 'chroma': {
      const c = await openChroma(flag, spec.location, spec.location, { side, scope: o.scope, flags: scopeFlags(side) });
      if (c.missing) throw missingScopeError(c.endpoint.label, c.scope, c.missing, scopeFlags(side), false);
      return c.endpoint;
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
        const c = await servedDir(path.join(copy, 'db'), `${value} (a copy, served locally)`, { removeAfter: copy, scope: o.scope, side });
        if (c.missing) {
          await c.endpoint.close();
          throw missingScopeError(c.endpoint.label, c.scope, c.missing, scopeFlags(side), false);
        }
        return c.endpoint;
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

export interface TargetOptions {
  resume: boolean;
  dryRun: boolean;
  /** `--target-tenant` / `--target-database` (Chroma servers and persist dirs). */
  scope?: ScopeChoice;
  /** `--create-database`: a missing tenant or database is created just before the first write. */
  createDatabase?: boolean;
  /** Told what `--create-database` created (e.g. "database prod in tenant acme"), for the summary. */
  onCreated?: (what: string) => void;
  /** `--qdrant-shards`, `--qdrant-replication`, `--qdrant-ordering` (a Qdrant target). */
  qdrant?: QdrantOptions;
}

/** Open the target; a new directory (named as an explicit path) is created and served by an embedded Chroma server. */
export async function openTarget(value: string, o: TargetOptions): Promise<OpenedTarget> {
  const flag = '--target-url';
  const spec = parseEndpoint(flag, value, { side: 'target', mayCreate: true });
  switch (spec.kind) {
    case 'chroma': {
      const c = await openChroma(flag, spec.location, spec.location, { side: 'target', scope: o.scope, flags: scopeFlags('target') });
      return { endpoint: c.endpoint, prepareWrite: scopeCreator(c, o) };
    }
    case 'qdrant': {
      const e = new QdrantEndpoint(value, undefined, o.qdrant);
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
        const c = await servedDir(empty, `${value} (new; dry run)`, { removeAfter: empty, scope: o.scope, side: 'target' });
        return { endpoint: c.endpoint, prepareWrite: await closedOnRefusal(c, () => scopeCreator(c, o)) };
      }
      if (!exists && !o.createDatabase && (o.scope?.tenant ?? 'default_tenant') !== 'default_tenant') {
        // A new persist dir holds only default_tenant: refused before the directory is made.
        throw missingScopeError(`${flag} ${value}`, { tenant: o.scope!.tenant!, database: o.scope?.database ?? 'default_database' }, 'tenant', scopeFlags('target'), true);
      }
      if (!exists && !o.createDatabase && (o.scope?.database ?? 'default_database') !== 'default_database') {
        throw missingScopeError(`${flag} ${value}`, { tenant: 'default_tenant', database: o.scope!.database! }, 'database', scopeFlags('target'), true);
      }
      if (!exists) await fs.mkdir(dir, { recursive: true });
      const c = await servedDir(dir, `${value} (served locally)`, { scope: o.scope, side: 'target' });
      return { endpoint: c.endpoint, prepareWrite: await closedOnRefusal(c, () => scopeCreator(c, o)), createdDir: exists ? undefined : dir };
    }
  }
}

/** A Chroma endpoint in its tenant and database, and what of them is missing there. */
interface OpenedChroma {
  endpoint: Endpoint;
  scope: ChromaScope;
  missing: 'tenant' | 'database' | null;
  /** Creates the missing tenant and database. */
  create(): Promise<string>;
}

/**
 * A Chroma server (a user's, or one the tool serves a persist dir with) in the chosen tenant and
 * database: reachable with the side's token, scope resolved and checked, the server's limits applied.
 */
async function openChroma(
  flag: string, url: string, label: string,
  o: { side?: ChromaSide; scope?: ScopeChoice; flags: ReturnType<typeof scopeFlags> },
): Promise<OpenedChroma> {
  const probe = new ChromaEndpoint(url, label, o.side);
  await probe.connect(flag);
  const token = o.side ? chromaToken(o.side) ?? null : null;
  const scope = await resolveScope(chromaClientFor(url, token), o.scope ?? {}, o.flags, `${flag} ${label}`);
  const scoped = isDefaultScope(scope) ? label : `${label} (${describeScope(scope)})`;
  const admin = chromaAdminFor(url, token);
  const missing = await missingPart(admin, scope);
  const inner = new ChromaEndpoint(url, scoped, o.side, scope);
  const endpoint = withServerLimits(inner, limitsFor(url, await inner.maxBatchSize()));
  return { endpoint, scope, missing, create: () => createScope(admin, scope, missing ?? 'database', `${flag} ${scoped}`) };
}

/** prepareWrite for a Chroma target: refused when its tenant or database is missing, unless --create-database (then created). */
function scopeCreator(c: OpenedChroma, o: TargetOptions): OpenedTarget['prepareWrite'] {
  if (c.missing && !o.createDatabase) throw missingScopeError(c.endpoint.label, c.scope, c.missing, scopeFlags('target'), true);
  let created = false;
  return async () => {
    if (!c.missing || created) return;
    o.onCreated?.(await c.create());
    created = true;
  };
}

/** `f()`, the served endpoint closed (its server stopped) when it throws. */
async function closedOnRefusal<T>(c: OpenedChroma, f: () => T): Promise<T> {
  try {
    return f();
  } catch (e) {
    await c.endpoint.close().catch(() => undefined);
    throw e;
  }
}

async function servedDir(dir: string, label: string, o: { removeAfter?: string; scope?: ScopeChoice; side: ChromaSide }): Promise<OpenedChroma> {
  let server: ChromaServer;
  try {
    server = await startChromaServer({ path: dir });
  } catch (e) {
    throw new UserError(`${label}: the embedded Chroma server did not start on it (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`);
  }
  const stop = async () => {
    await server.stop();
    if (o.removeAfter) await fs.rm(o.removeAfter, { recursive: true, force: true });
  };
  let c: OpenedChroma;
  try {
    c = await openChroma(`--${o.side}-url`, server.url, label, { scope: o.scope, flags: scopeFlags(o.side) });
  } catch (e) {
    await stop();
    throw e;
  }
  const e = c.endpoint;
  const close = e.close.bind(e);
  e.close = async () => {
    await close();
    await stop();
  };
  return c;
}
