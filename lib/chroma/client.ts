import { ChromaClient } from 'chromadb';
import { tokenHeaders } from './api-token.ts';

/** A `chromadb` client for a server URL (http or https, default ports); `token` goes in the x-chroma-token header. */
export function chromaClientFor(url: string, token?: string | null): ChromaClient {
  const u = new URL(url);
  const headers = tokenHeaders(token);
  return new ChromaClient({
    host: u.hostname, port: Number(u.port || (u.protocol === 'https:' ? 443 : 80)), ssl: u.protocol === 'https:',
    ...(Object.keys(headers).length ? { headers } : {}),
  });
}
