/**
 * The token a Chroma server with token auth wants, from the environment only (never a flag, never
 * a URL): sent as the `x-chroma-token` header by every Chroma call the tool makes, and registered
 * as a secret as soon as it is read, so it is redacted from every line printed or logged.
 *
 *   CHROMA_API_KEY         every Chroma server (deploy/rollback/verify health checks, both migrate sides)
 *   CHROMA_SOURCE_API_KEY  migrate's --source-url, validate's --old-db-url (wins over CHROMA_API_KEY)
 *   CHROMA_TARGET_API_KEY  migrate's and restore's --target-url, validate's --new-db-url (wins over CHROMA_API_KEY)
 */
import { registerSecret } from '../report/secrets.ts';

export const CHROMA_TOKEN_HEADER = 'x-chroma-token';

/** Which end of a migration a server is; undefined: a server the deploy checks. */
export type ChromaSide = 'source' | 'target';

export const TOKEN_ENV: Record<ChromaSide | 'any', string> = {
  any: 'CHROMA_API_KEY',
  source: 'CHROMA_SOURCE_API_KEY',
  target: 'CHROMA_TARGET_API_KEY',
};

/** The side's token (its own variable, else CHROMA_API_KEY); undefined when neither is set. */
export function chromaToken(side?: ChromaSide, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const token = (side && env[TOKEN_ENV[side]]) || env[TOKEN_ENV.any] || undefined;
  registerSecret(token);
  return token;
}

/** The request headers that carry `token` (none without one). */
export function tokenHeaders(token: string | null | undefined): Record<string, string> {
  return token ? { [CHROMA_TOKEN_HEADER]: token } : {};
}

/** Which variables to set, for messages: e.g. "CHROMA_TARGET_API_KEY or CHROMA_API_KEY". */
export function tokenVariables(side?: ChromaSide): string {
  return side ? `${TOKEN_ENV[side]} or ${TOKEN_ENV.any}` : TOKEN_ENV.any;
}
