/**
 * The one place where shell text is produced.
 *
 * A remote step is a `RemoteScript`: constant POSIX sh code that we wrote, plus the values it
 * works on as positional arguments ("$1", "$2", ...). User input never becomes code: it is only
 * ever an argument, single-quoted here. The same rendering is what runs, what `--plan` prints and
 * what the log shows, so they cannot disagree.
 */
export interface RemoteScript {
  /** What the script does, in a few words (log lines, plan, error messages). */
  title: string;
  /** Constant sh code. Must not contain user input: values come in through `args`. */
  code: string;
  /** Positional arguments, available to `code` as "$1".."$N". */
  args: readonly string[];
}

export function remoteScript(title: string, code: string, args: readonly string[] = []): RemoteScript {
  for (const a of args) {
    if (a.includes('\0')) throw new Error(`argument for "${title}" contains a NUL byte`);
  }
  return { title, code: dedent(code), args };
}

/** Quote one word for a POSIX shell: single quotes, with embedded single quotes as '\''. */
export function shQuote(word: string): string {
  if (word === '') return "''";
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** argv for running the script through sh: ["sh", "-c", code, "ferry", ...args]. */
export function shArgv(script: RemoteScript): string[] {
  return ['sh', '-c', script.code, 'ferry', ...script.args];
}

/** The script as one command line a person could paste into a POSIX shell. */
export function renderShCommand(script: RemoteScript): string {
  return shArgv(script).map(shQuote).join(' ');
}

/** Join argv words into one command line (each word quoted). */
export function renderArgv(argv: readonly string[]): string {
  return argv.map(shQuote).join(' ');
}

function dedent(code: string): string {
  const lines = code.replace(/^\n/, '').replace(/\s+$/, '').split('\n');
  const indents = lines.filter((l) => l.trim()).map((l) => /^ */.exec(l)![0].length);
  const cut = indents.length ? Math.min(...indents) : 0;
  return lines.map((l) => l.slice(cut)).join('\n');
}
