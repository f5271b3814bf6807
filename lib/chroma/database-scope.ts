/**
 * Which tenant and database of a Chroma server a migration reads or writes, and whether they exist.
 *
 * Names are taken exactly as given (`--source-tenant`, `--target-database`, ...). One not given
 * is asked of the server (`GET /api/v2/auth/identity`, as Chroma's CloudClient does): the tenant
 * the token belongs to, and its database when the token reaches exactly one. A local server
 * answers default_tenant / default_database; a server without that endpoint gets the defaults.
 *
 * A Chroma server lists no collections (200, []) in a tenant or database that does not exist, so
 * a mistyped name would look like an empty database: existence is checked explicitly.
 */
import { ChromaNotFoundError, type AdminClient, type ChromaClient } from 'chromadb';
import { UserError } from '../common/errors.ts';
import { DEFAULT_SCOPE, type ChromaScope } from './client.ts';

/** The names given on the command line (either may be absent). */
export interface ScopeChoice {
  tenant?: string;
  database?: string;
}

/** The flags that name one side's tenant and database, for messages. */
export interface ScopeFlags {
  tenant: string;
  database: string;
}

export function scopeFlags(side: 'source' | 'target'): ScopeFlags {
  return { tenant: `--${side}-tenant`, database: `--${side}-database` };
}

export function isDefaultScope(s: ChromaScope): boolean {
  return s.tenant === DEFAULT_SCOPE.tenant && s.database === DEFAULT_SCOPE.database;
}

/** `tenant T, database D`, for labels and messages. */
export function describeScope(s: ChromaScope): string {
  return `tenant ${s.tenant}, database ${s.database}`;
}

/** The tenant and database to use: the given names, the rest from the server's identity answer. */
export async function resolveScope(client: ChromaClient, given: ScopeChoice, flags: ScopeFlags, label: string): Promise<ChromaScope> {
  if (given.tenant !== undefined && given.database !== undefined) return { tenant: given.tenant, database: given.database };
  let identity: { tenant?: string; databases?: string[] } | null;
  try {
    identity = await client.getUserIdentity();
  } catch (e) {
    if (!(e instanceof ChromaNotFoundError)) throw e;
    identity = null; // a server without the endpoint: Chroma's defaults
  }
  const tenant = given.tenant ?? identity?.tenant ?? DEFAULT_SCOPE.tenant;
  if (given.database !== undefined) return { tenant, database: given.database };
  // The identity's databases are those of its own tenant.
  const dbs = identity && tenant === identity.tenant ? [...new Set(identity.databases ?? [])].filter((d) => d !== '*') : [];
  if (dbs.length > 1) {
    throw new UserError(`${label}: the token reaches ${dbs.length} databases of tenant ${tenant} (${dbs.sort().join(', ')}); choose one with ${flags.database}`);
  }
  return { tenant, database: dbs[0] ?? DEFAULT_SCOPE.database };
}

/** What of `scope` is missing on the server: nothing, the database, or the tenant (and so its database). */
export async function missingPart(admin: AdminClient, scope: ChromaScope): Promise<'tenant' | 'database' | null> {
  try {
    await admin.getDatabase({ tenant: scope.tenant, name: scope.database });
    return null;
  } catch (e) {
    if (!(e instanceof ChromaNotFoundError)) throw e;
  }
  try {
    await admin.getTenant({ name: scope.tenant });
    return 'database';
  } catch (e) {
    if (!(e instanceof ChromaNotFoundError)) throw e;
    return 'tenant';
  }
}

/** The refusal for a missing tenant or database (before anything is written). */
export function missingScopeError(label: string, scope: ChromaScope, missing: 'tenant' | 'database', flags: ScopeFlags, canCreate: boolean): UserError {
  const what = missing === 'tenant' ? `no tenant ${scope.tenant}` : `no database ${scope.database} in tenant ${scope.tenant}`;
  const fix = canCreate ? `, or pass --create-database to create it` : '';
  return new UserError(`${label}: ${what} there; check ${missing === 'tenant' ? flags.tenant : flags.database}${fix}`);
}

/** Create the missing tenant (when it is missing) and the database; says what was created. */
export async function createScope(admin: AdminClient, scope: ChromaScope, missing: 'tenant' | 'database', label: string): Promise<string> {
  try {
    if (missing === 'tenant') await admin.createTenant({ name: scope.tenant });
    await admin.createDatabase({ tenant: scope.tenant, name: scope.database });
  } catch (e) {
    throw new UserError(`${label}: could not create ${describeScope(scope)} (${e instanceof Error ? e.message : String(e)}); create it on the server or choose another name`);
  }
  return missing === 'tenant' ? `tenant ${scope.tenant} and its database ${scope.database}` : `database ${scope.database} in tenant ${scope.tenant}`;
}
