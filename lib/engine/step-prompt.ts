import readline from 'node:readline/promises';
import { UserError } from '../common/errors.ts';

export type StepAnswer = 'continue' | 'skip' | 'abort';

/** Asks before each step of a `--step` run. The terminal is the default; tests pass their own. */
export interface StepPrompter {
  ask(step: string, title: string): Promise<StepAnswer>;
  close(): void;
}

/** Reads answers from a terminal: c(ontinue) / s(kip) / a(bort); anything else asks again. */
export function terminalPrompter(input: NodeJS.ReadableStream = process.stdin, output: NodeJS.WritableStream = process.stderr): StepPrompter {
  if (!(input as { isTTY?: boolean }).isTTY) throw new UserError('--step needs a terminal to ask before each step');
  const rl = readline.createInterface({ input, output });
  return {
    async ask(step, title) {
      for (;;) {
        const a = (await rl.question(`next: ${title}\n[c]ontinue, [s]kip or [a]bort ${step}? `)).trim().toLowerCase();
        if (a === 'c' || a === 'continue' || a === '') return 'continue';
        if (a === 's' || a === 'skip') return 'skip';
        if (a === 'a' || a === 'abort') return 'abort';
      }
    },
    close() {
      rl.close();
    },
  };
}
