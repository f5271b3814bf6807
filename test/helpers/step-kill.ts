/**
 * SIGKILL of the CLI at a step boundary, at a known point and without a race: the CLI runs with
 * `--step` (it asks before each step, on a terminal) under a pseudo-terminal from util-linux
 * `script`; every prompt before the chosen step is answered `c`, and at the chosen step's prompt
 * (the steps before it done and recorded, the step itself not started) the CLI is killed with
 * SIGKILL. Nothing in the shipped CLI knows about it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { shQuote } from '../../lib/remote/shell.ts';
import { CLI } from './deploy-env.ts';

/** What the killed run printed, and the steps it was asked about (the last is the one it died before). */
export interface KilledRun {
  output: string;
  asked: string[];
}

const PROMPT = /\[c\]ontinue, \[s\]kip or \[a\]bort (\S+)\? /g;
/** Terminal control sequences (readline moves the cursor after its question). */
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

let scriptChecked = false;

/** util-linux `script` (Debian's essential bsdutils) gives the CLI its terminal. */
function requireScript(): void {
  if (scriptChecked) return;
  const r = spawnSync('script', ['--version'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error('util-linux `script` is needed to run the CLI on a pseudo-terminal (--step asks on a terminal): apt-get install bsdutils');
  scriptChecked = true;
}

/**
 * Runs `chroma-ferry ARGS --step` on a pseudo-terminal and SIGKILLs it at the prompt before step
 * `killAt`. Rejects when the run ends before that prompt (with what it printed) or takes longer
 * than `timeoutMs`.
 */
export async function killAtStep(args: string[], killAt: string, o: { env: Record<string, string>; timeoutMs?: number }): Promise<KilledRun> {
  requireScript();
  // The shell says its pid, then becomes the CLI (exec keeps the pid): the process to kill.
  const command = `echo "ferry-cli-pid=$$"; exec ${[process.execPath, CLI, ...args, '--step'].map(shQuote).join(' ')}`;
  const child = spawn('script', ['-qefc', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...o.env } });
  let raw = '';
  let output = '';
  let pid = 0;
  let killed = false;
  const asked: string[] = [];
  return new Promise<KilledRun>((resolve, reject) => {
    const timer = setTimeout(() => {
      if (pid) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      child.kill('SIGKILL');
      reject(new Error(`no prompt for ${killAt} within ${o.timeoutMs ?? 180_000} ms; output:\n${output}`));
    }, o.timeoutMs ?? 180_000);
    const onData = (b: Buffer) => {
      raw += b.toString();
      output = raw.replace(ANSI, '');
      pid ||= Number(/ferry-cli-pid=(\d+)/.exec(output)?.[1] ?? 0);
      // One answer per prompt, in order.
      const prompts = [...output.matchAll(PROMPT)].map((m) => m[1]!);
      for (const step of prompts.slice(asked.length)) {
        if (killed) return;
        asked.push(step);
        if (step === killAt) {
          killed = true;
          process.kill(pid, 'SIGKILL');
        } else {
          child.stdin.write('c\n');
        }
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', () => {
      clearTimeout(timer);
      if (killed) resolve({ output, asked });
      else reject(new Error(`the run ended before the prompt for ${killAt} (asked: ${asked.join(', ') || 'nothing'}); output:\n${output}`));
    });
  });
}
