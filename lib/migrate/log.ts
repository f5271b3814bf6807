import fs from 'node:fs/promises';
import { redact } from '../secrets.ts';

/** JSON lines in `--log-dir`: one object per event, with a timestamp; secrets redacted. */
export class JsonlLog {
  private chain: Promise<void> = Promise.resolve();
  constructor(readonly file: string) {}

  write(event: Record<string, unknown>): Promise<void> {
    const line = `${redact(JSON.stringify({ ts: new Date().toISOString(), ...event }))}\n`;
    this.chain = this.chain.then(() => fs.appendFile(this.file, line));
    return this.chain;
  }

  async close(): Promise<void> {
    await this.chain.catch(() => undefined);
  }
}
