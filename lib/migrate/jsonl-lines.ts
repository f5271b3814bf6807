import { createReadStream } from 'node:fs';
import readline from 'node:readline';

/** The JSON values of a JSON-lines file, streamed (blank lines skipped). */
export async function* readJsonl<T>(file: string): AsyncIterable<T> {
  const rl = readline.createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const line of rl) if (line.trim()) yield JSON.parse(line) as T;
}
