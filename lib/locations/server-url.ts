/**
 * Addresses typed by the user are read as written, never guessed. A server URL needs its scheme
 * (a bare `HOST:PORT` is refused with the URL it probably meant) and holds no credentials: they
 * would end up in plans, logs and summaries, so a URL with `user:pass@` is refused without ever
 * echoing the password; tokens come from the environment and travel in a header.
 */
import { UserError } from '../common/errors.ts';
import { redactUrlCredentials } from '../report/secrets.ts';

const HOST_RE = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV6_RE = /^\[[0-9A-Fa-f:.]+\]$/;

/** A DNS name or IPv4 address (`db1.example.com`, `localhost`, `127.0.0.1`), or `[IPv6]`. */
export function isHostName(value: string): boolean {
  return HOST_RE.test(value) || IPV6_RE.test(value);
}

export interface BareHostPort {
  /** What came before `@`, if anything (a login, or credentials). */
  userinfo?: string;
  host: string;
  port: number;
}

/** `HOST:PORT` or `USERINFO@HOST:PORT` without a scheme: a server address missing its scheme. */
export function bareHostPort(value: string): BareHostPort | undefined {
  const m = /^(?:([^/\s]+)@)?([^@/\s:]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/.exec(value);
  if (!m || !isHostName(m[2]!)) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { userinfo: m[1], host: m[2]!, port };
}

/** A host name alone that reads as a server (`localhost`, or a name with a dot): not a path. */
export function looksLikeServerName(value: string): boolean {
  return !value.includes('/') && isHostName(value) && (value === 'localhost' || value.includes('.') || value.startsWith('['));
}

/** Refuse a URL with credentials in it; the message shows it with the credentials as `***`. */
export function refuseUrlCredentials(flag: string, raw: string, u: URL, instead: string): void {
  if (u.username || u.password) {
    throw new UserError(`${flag} ${redactUrlCredentials(raw)}: credentials in a URL are refused (they would be printed and logged); ${instead}`);
  }
}

/**
 * An http(s) server URL: scheme required, no credentials. `instead` says where a token goes
 * (e.g. the environment variable sent as a header); `example` is shown for text that is no URL;
 * `shownAs` is the value as the user typed it, when `raw` was derived from it.
 */
export function parseHttpUrl(flag: string, raw: string, o: { instead: string; example: string; defaultPort?: number; shownAs?: string }): URL {
  const shown = redactUrlCredentials(o.shownAs ?? raw);
  const bare = bareHostPort(raw);
  if (bare?.userinfo !== undefined) {
    throw new UserError(`${flag} ***@${bare.host}:${bare.port}: credentials in a URL are refused (they would be printed and logged); ${o.instead}; and the URL needs its scheme: http://${bare.host}:${bare.port}`);
  }
  if (bare) throw new UserError(`${flag} ${raw}: must be http:// or https://; did you mean http://${bare.host}:${bare.port}?`);
  if (looksLikeServerName(raw)) throw new UserError(`${flag} ${raw}: must be http:// or https://; did you mean http://${raw}:${o.defaultPort ?? 8000}?`);
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new UserError(`${flag} ${shown}: not a URL; use e.g. ${o.example}`);
  }
  refuseUrlCredentials(flag, o.shownAs ?? raw, u, o.instead);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UserError(`${flag} ${shown}: must be http:// or https://, e.g. ${o.example}`);
  return u;
}
