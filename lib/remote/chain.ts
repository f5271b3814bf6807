/**
 * Several remote scripts as ONE remote command: one round trip instead of one per script.
 *
 * `chainScripts(title, scripts)` makes a RemoteScript whose arguments are, for each part in
 * order, its constant code and then its arguments; its own code is generated from the parts'
 * argument counts only and runs each part as `sh -c "$CODE" ferry "$ARG"...`: a part runs exactly
 * as it would alone (own process, `$0`, `$$`, traps, `exit`), and no part's code or value is ever
 * pasted into a shell string. The parts run in order, their stdout in that order; the first part
 * that exits non-zero stops the chain, which exits with that status (refusals through the exit
 * status, lib/remote/refusals.ts, and the space guards work unchanged) after printing
 * `ferry_chain_part=N` on stderr. `runChain` turns that failure back into the failing part's own
 * (its title, status and stderr), as if it had run alone. Parts read no standard input.
 */
import { RemoteCommandError } from '../common/errors.ts';
import type { RemoteHost, RunOptions, RunResult } from '../hosts/remote-host.ts';
import { refusalError } from './refusals.ts';
import { remoteScript, type RemoteScript } from './shell.ts';

/** A chain: one RemoteScript (what runs, what `--plan` prints), and the parts it runs. */
export interface ChainedScript extends RemoteScript {
  readonly parts: readonly RemoteScript[];
}

const PART_MARK = 'ferry_chain_part';
const PART_MARK_AT_END = new RegExp(`(?:^|\\n)${PART_MARK}=(\\d+)\\n?$`);

export function chainScripts(title: string, scripts: readonly RemoteScript[]): ChainedScript {
  if (!scripts.length) throw new Error(`the chain "${title}" has no scripts`);
  const args: string[] = [];
  const lines = scripts.map((s, i) => {
    const code = args.length + 1;
    args.push(s.code, ...s.args);
    const refs = s.args.map((_, k) => ` "\${${code + 1 + k}}"`).join('');
    return `sh -c "\${${code}}" ferry${refs} || { ferry_rc=$?; printf '\\n${PART_MARK}=%s\\n' ${i + 1} >&2; exit "$ferry_rc"; }`;
  });
  return { ...remoteScript(title, lines.join('\n'), args), parts: [...scripts] };
}

/** The failure of one part of a chain, as that part alone would have failed. */
export class ChainPartError extends RemoteCommandError {
  constructor(
    readonly part: RemoteScript,
    exitCode: number,
    stderr: string,
  ) {
    super(part.title, exitCode, stderr);
  }
}

/** `e` from running `chain`, as its failing part's own failure (a failure with no part named, e.g. a lost connection, unchanged). */
export function failedPartError(chain: ChainedScript, e: unknown): unknown {
  if (!(e instanceof RemoteCommandError)) return e;
  const m = PART_MARK_AT_END.exec(e.stderr);
  const part = m ? chain.parts[Number(m[1]) - 1] : undefined;
  if (!m || !part) return e;
  return new ChainPartError(part, e.exitCode, e.stderr.slice(0, m.index));
}

export interface ChainRunOptions extends RunOptions {
  /**
   * Parts whose refusal becomes its one line (a UserError), as `runRefusing` does for one script;
   * a refusal of any other part stays a RemoteCommandError (it says the refusal too).
   */
  refusing?: readonly RemoteScript[];
  /** The volume the refusal line names. */
  volume?: string;
}

/** host.run of the chain; a failure is the failing part's own (`failedPartError`). */
export async function runChain(host: RemoteHost, chain: ChainedScript, opts: ChainRunOptions = {}): Promise<RunResult> {
  const { refusing, volume, ...run } = opts;
  try {
    return await host.run(chain, run);
  } catch (e) {
    const err = failedPartError(chain, e);
    if (err instanceof ChainPartError && refusing?.includes(err.part)) throw refusalError(err, { host: host.label, volume }) ?? err;
    throw err;
  }
}
