import path from 'node:path';
import { UserError } from '../common/errors.ts';
import { redactUrlCredentials } from '../report/secrets.ts';
import { bareHostPort, isHostName } from './server-url.ts';

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
    if (user.includes(':')) {
      throw new UserError(`--target ${redactUrlCredentials(raw)}: a password in the target is refused (it would be printed and logged); ssh logs in with a key: --ssh-key FILE`);
    }
    if (!USER_RE.test(user)) {
      throw new UserError(`--target: user "${user}" is not a valid login name (letters, digits, _ . -)`);
    }
    if (!isHostName(host)) {
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
  const guess = targetGuess(raw);
  if (guess) throw new UserError(`--target ${withoutPassword(raw)}: did you mean ${guess}? A target names its kind: ssh://USER@HOST[:PORT], fly:APP or local:/ABS/PATH`);
  const scheme = /^([a-z][a-z0-9+.-]*):(?!\d)/i.exec(raw)?.[1];
  throw new UserError(
    `--target ${redactUrlCredentials(raw)}: unknown target${scheme ? ` scheme "${scheme}:"` : ''}; use ssh://USER@HOST[:PORT], fly:APP or local:/ABS/PATH`,
  );
}

/** `USER:PASS@HOST...` without a scheme, shown as `***@HOST...`. */
function withoutPassword(raw: string): string {
  const at = raw.lastIndexOf('@');
  return at > 0 && raw.slice(0, at).includes(':') ? `***${raw.slice(at)}` : raw;
}

/** What a target without its kind probably meant: `HOST:PORT`, `USER@HOST[:PORT]`, a host name, an absolute path. */
function targetGuess(raw: string): string | undefined {
  if (raw.includes('://')) return undefined;
  if (raw.startsWith('/')) return `local:${raw}`;
  const hp = bareHostPort(raw);
  const user = (u: string | undefined) => (u !== undefined && USER_RE.test(u) ? u : 'USER');
  if (hp) return `ssh://${user(hp.userinfo)}@${hp.host}:${hp.port}`;
  const at = /^([^@]+)@([^@:/]+)$/.exec(raw);
  if (at && isHostName(at[2]!)) return `ssh://${user(at[1])}@${at[2]}`;
  if (isHostName(raw)) return FLY_APP_RE.test(raw) && !raw.includes('.') ? `ssh://USER@${raw} or fly:${raw}` : `ssh://USER@${raw}`;
  return undefined;
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
