/**
 * Which processes on this machine show a string in their command line or environment, read from
 * /proc/PID/cmdline and /proc/PID/environ (root reads every process's; the chrooted sessions of
 * the test sshd share this PID namespace). A server calls it while a request is in flight: the
 * client that sent it is then alive, so a URL it got as an argument or a variable is seen.
 */
import fs from 'node:fs';

export interface ProcessHit {
  pid: number;
  where: 'cmdline' | 'environ';
  /** The command line, NULs as spaces, at most 200 characters. */
  command: string;
}

export function processesShowing(needle: string): ProcessHit[] {
  const hits: ProcessHit[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const read = (file: string): string => {
      try {
        return fs.readFileSync(`/proc/${name}/${file}`, 'latin1');
      } catch {
        return ''; // gone meanwhile, or a kernel thread
      }
    };
    const cmdline = read('cmdline');
    const command = cmdline.replace(/\0/g, ' ').slice(0, 200);
    if (cmdline.includes(needle)) hits.push({ pid, where: 'cmdline', command });
    if (read('environ').includes(needle)) hits.push({ pid, where: 'environ', command });
  }
  return hits;
}

/** Whether this process can read other processes' environment (root): else a scan proves nothing. */
export function canScanProcesses(): boolean {
  try {
    fs.readFileSync('/proc/1/environ');
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether `pid` runs: signalable and not a zombie. An ended process stays a zombie until its
 * parent reaps it; an orphan's parent is PID 1, which on some machines (this one: ~1.7 s) reaps
 * late, and `kill -0` succeeds on a zombie. The shipped remote scripts judge the same way
 * (lib/remote/process-alive.ts).
 */
export function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false; // reaped meanwhile
  }
}
