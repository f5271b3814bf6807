/**
 * The commands a refusal or a summary tells the user to run next, built from the command line the
 * user typed, so that each works when copied as printed: `deploy ... --from restart` is that very
 * deploy (same source, target, flags) resuming at a step; `rollback` and `unlock` keep the flags
 * that reach the same volume (and restart and check the same server). Secrets are redacted.
 */
import { redact } from '../report/secrets.ts';
import { renderArgv } from '../remote/shell.ts';

export interface CommandHints {
  /** The deploy the user ran, resuming its recorded run at `step`. */
  deployFrom(step: string): string;
  /** A rollback of the same volume (restarting and checking the same server). */
  rollback(extra?: string[]): string;
  /** Removing a stale lock of the same volume. */
  unlock(): string;
}

/** Flags of the volume and its host, kept by every hint. */
const HOST_FLAGS = ['--target', '--volume', '--ssh-key', '--ssh-option', '--machine', '--config'];
const ROLLBACK_FLAGS = new Set([...HOST_FLAGS, '--db-dir', '--restart-cmd', '--health-url', '--health-timeout', '--yes', '--json']);
const UNLOCK_FLAGS = new Set([...HOST_FLAGS, '--yes']);
/** What a resumed deploy must not repeat: another selection, the prompts, the plan. */
const NOT_RESUMED = new Set(['--from', '--only', '--step', '--plan']);

type Flag = [name: string, value?: string];

/**
 * Hints from `argv` (the words after the program: `deploy --source db ...`); `booleanFlags` are
 * the command's flags that take no value. Without argv (a runbook called in-process) the hints
 * name the command and say which flags to repeat.
 */
export function commandHints(argv: readonly string[] | undefined, booleanFlags: Iterable<string> = []): CommandHints {
  if (!argv?.length) return genericHints();
  const bools = new Set(booleanFlags);
  const [command, ...rest] = argv;
  const flags: Flag[] = [];
  for (let i = 0; i < rest.length; i++) {
    const w = rest[i]!;
    if (!w.startsWith('--')) continue; // an operand: none of the commands with hints takes one
    const eq = w.indexOf('=');
    if (eq > 0) flags.push([w.slice(0, eq), w.slice(eq + 1)]);
    else if (bools.has(w) || i + 1 >= rest.length) flags.push([w]);
    else flags.push([w, rest[++i]]);
  }
  const render = (cmd: string, keep: (f: Flag) => boolean, extra: string[] = []) =>
    redact(`chroma-ferry ${renderArgv([cmd, ...flags.filter(keep).flatMap(([n, v]) => (v === undefined ? [n] : [n, v])), ...extra])}`);
  const generic = genericHints();
  return {
    deployFrom: (step) => (command === 'deploy' ? render('deploy', ([n]) => !NOT_RESUMED.has(n), ['--from', step]) : generic.deployFrom(step)),
    rollback: (extra = []) => render('rollback', ([n]) => ROLLBACK_FLAGS.has(n), extra),
    unlock: () => render('unlock', ([n]) => UNLOCK_FLAGS.has(n)),
  };
}

function genericHints(): CommandHints {
  return {
    deployFrom: (step) => `chroma-ferry deploy --from ${step} (with the flags of that deploy)`,
    rollback: (extra = []) => `chroma-ferry rollback${extra.length ? ` ${renderArgv(extra)}` : ''} (with the target, restart and health flags)`,
    unlock: () => 'chroma-ferry unlock (with the target flags)',
  };
}
