/**
 * `--source-tenant` / `--source-database` / `--target-tenant` / `--target-database`, as `migrate`,
 * `validate` and `restore` take them: only where that side is a Chroma server or persist dir,
 * never an empty name. Absent names are resolved later against the server (default_tenant and
 * default_database on a local server; lib/chroma/database-scope.ts).
 */
import { UserError } from '../common/errors.ts';
import type { ScopeChoice } from '../chroma/database-scope.ts';
import type { EndpointKind } from '../migrate/endpoints.ts';

/** A side's tenant/database flags, checked against the kind of endpoint `urlFlag` names. */
export function scopeOf(
  side: 'source' | 'target', kind: EndpointKind, tenant: string | undefined, database: string | undefined, urlFlag = `--${side}-url`,
): ScopeChoice | undefined {
  for (const [flag, v] of [[`--${side}-tenant`, tenant], [`--${side}-database`, database]] as const) {
    if (v === undefined) continue;
    if (kind !== 'chroma' && kind !== 'dir') throw new UserError(`${flag}: ${urlFlag} is a ${kind === 'jsonl' ? '.jsonl file' : 'Qdrant server'}, which has no tenants or databases; drop ${flag}`);
    if (v.trim() === '') throw new UserError(`${flag}: empty name; pass the exact name, e.g. ${flag} ${flag.endsWith('tenant') ? 'default_tenant' : 'default_database'}`);
  }
  return tenant === undefined && database === undefined ? undefined : { tenant, database };
}

/** `tenant/database` as given, the defaults filled in (for comparing and printing). */
export function scopeName(s: ScopeChoice | undefined): string {
  return `${s?.tenant ?? 'default_tenant'}/${s?.database ?? 'default_database'}`;
}
