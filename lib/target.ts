import path from 'node:path';
import { UserError } from './errors.ts';

export type TargetSpec =
  | { kind: 'local'; root: string }
  | { kind: 'ssh'; user: string; host: string; port: number }
  | { kind: 'fly'; app: string };

/** Fly app names: lowercase letters, digits and dashes (not starting with a dash). */
export const FLY_APP_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

export function parseFlyApp(label: string, app: string): string {
  if (!FLY_APP_RE.test(app)) {
    throw new UserError(`${label}: Fly app name ${JSON.stringify(app)} is not valid (lowercase letters, digits and dashes only)`);
  }
  return app;
}

const USER_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/;
const HOSTNAME_RE = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV6_RE = /^\[[0-9A-Fa-f:.]+\]$/;

/** Parse `--target`. Anything that is not exactly one of the documented forms is refused. */
export function parseTarget(raw: string): TargetSpec {
  if (raw.startsWith('local:')) {
    const root = raw.slice('local:'.length);
    if (!path.isAbsolute(root)) {
      throw new UserError(`--target ${raw}: local: needs an absolute path, e.g. local:/srv/chroma-volume`);
    }
    assertNoControlChars('--target local: path', root);
    return { kind: 'local', root: path.resolve(root) };
  }
  if (raw.startsWith('ssh://')) {
    const rest = raw.slice('ssh://'.length);
    const m = /^([^@]+)@(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(rest);
    if (!m) throw new UserError(`--target ${raw}: expected ssh://USER@HOST[:PORT]`);
    const [, user = '', host = '', portText] = m;
    if (!USER_RE.test(user)) {
      throw new UserError(`--target: user "${user}" is not a valid login name (letters, digits, _ . -)`);
    }
    if (!HOSTNAME_RE.test(host) && !IPV6_RE.test(host)) {
      throw new UserError(`--target: host "${host}" is not a valid host name or IP address`);
    }
    const port = portText === undefined ? 22 : Number(portText);
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new UserError(`--target: port ${portText} is out of range (1-65535)`);
    }
    return { kind: 'ssh', user, host: host.replace(/^\[|\]$/g, ''), port };
  }
  if (raw.startsWith('fly:')) {
    return { kind: 'fly', app: parseFlyApp('--target', raw.slice('fly:'.length)) };
  }
  const scheme = /^([a-z0-9+.-]*):/i.exec(raw)?.[1];
  throw new UserError(
    `--target ${raw}: unknown target${scheme ? ` scheme "${scheme}:"` : ''}; use ssh://USER@HOST[:PORT], fly:APP or local:/ABS/PATH`,
  );
}

export function assertNoControlChars(label: string, value: string): void {
  if (/[\u0000-\u001f\u007f]/.test(value)) {
    throw new UserError(`${label} contains a newline or control character; rename it`);
  }
}

/** `--volume`: an absolute POSIX path on the remote host, normalised. */
export function parseVolume(raw: string): string {
  assertNoControlChars('--volume', raw);
  if (!raw.startsWith('/')) throw new UserError(`--volume ${raw}: must be an absolute path such as /data`);
  const norm = path.posix.normalize(raw).replace(/\/+$/, '');
  if (norm === '' || norm === '/') throw new UserError('--volume /: refusing to use the filesystem root as the volume');
  return norm;
}

/** `--db-dir`: one directory name inside the volume. */
export function parseDbDir(raw: string): string {
  assertNoControlChars('--db-dir', raw);
  if (raw === '' || raw === '.' || raw === '..' || raw.includes('/') || raw.startsWith('-') || raw.startsWith('.')) {
    throw new UserError(`--db-dir ${JSON.stringify(raw)}: must be a plain directory name (no "/", not starting with "." or "-")`);
  }
  return raw;
}
