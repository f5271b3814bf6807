import { ChromaClient } from 'chromadb';

/** A `chromadb` client for a server URL (http or https, default ports). */
export function chromaClientFor(url: string): ChromaClient {
  const u = new URL(url);
  return new ChromaClient({ host: u.hostname, port: Number(u.port || (u.protocol === 'https:' ? 443 : 80)), ssl: u.protocol === 'https:' });
}
