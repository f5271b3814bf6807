import fs from 'node:fs/promises';
import { redact } from '../report/secrets.ts';

/** JSON lines in `--log-dir`: one object per event, with a timestamp; secrets redacted. */
export class JsonlLog {
  private chain: Promise<void> = Promise.resolve();
  /** `echo`: also print each event on stderr (`--verbose`). */
  constructor(readonly file: string, private readonly echo = false) {}

  write(event: Record<string, unknown>): Promise<void> {
    const line = `${redact(JSON.stringify({ ts: new Date().toISOString(), ...event }))}\n`;
    if (this.echo) process.stderr.write(line);
    this.chain = this.chain.then(() => fs.appendFile(this.file, line));
    return this.chain;
  }

  async close(): Promise<void> {
    await this.chain.catch(() => undefined);
  }
}
