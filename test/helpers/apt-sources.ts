/**
 * The Debian mirror and suite this machine's apt already uses, read from apt's own sources
 * (one-line `.list` files and deb822 `.sources` files), so that no test names a mirror host.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface AptSource {
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
  file: string;
}

export interface DebianMirror {
  /** e.g. http://deb.debian.org/debian */
  uri: string;
  /** e.g. bookworm */
  suite: string;
  /** The sources file it came from. */
  file: string;
}

/** `deb [opts] URI SUITE COMPONENT...` lines of a `.list` file. */
export function parseOneLineSources(text: string, file: string): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const m = /^(deb|deb-src)\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)(.*)$/.exec(line);
    if (!m) continue;
    out.push({ types: [m[1]!], uris: [m[2]!], suites: [m[3]!], components: m[4]!.trim().split(/\s+/).filter(Boolean), file });
  }
  return out;
}

/** deb822 paragraphs of a `.sources` file (`Enabled: no` ones left out). */
export function parseDeb822Sources(text: string, file: string): AptSource[] {
  const out: AptSource[] = [];
  for (const para of text.split(/\n[ \t]*\n/)) {
    const fields = new Map<string, string>();
    let last: string | undefined;
    for (const raw of para.split('\n')) {
      if (raw.startsWith('#') || !raw.trim()) continue;
      if (/^[ \t]/.test(raw)) {
        if (last) fields.set(last, `${fields.get(last)} ${raw.trim()}`);
        continue;
      }
      const i = raw.indexOf(':');
      if (i <= 0) continue;
      last = raw.slice(0, i).trim().toLowerCase();
      fields.set(last, raw.slice(i + 1).trim());
    }
    if (!fields.has('uris') || (fields.get('enabled') ?? 'yes').toLowerCase() === 'no') continue;
    const words = (k: string) => (fields.get(k) ?? '').split(/\s+/).filter(Boolean);
    out.push({ types: words('types'), uris: words('uris'), suites: words('suites'), components: words('components'), file });
  }
  return out;
}

/**
 * The first `deb` source whose URI is a Debian archive (path ending in `/debian`, so not
 * `debian-security`) with a release suite (`bookworm`, not `bookworm-updates`).
 */
export function pickDebianMirror(sources: AptSource[]): DebianMirror | undefined {
  for (const s of sources) {
    if (!s.types.includes('deb')) continue;
    const uri = s.uris.find((u) => /^https?:\/\/[^/]+(\/.*)?\/debian\/?$/.test(u));
    const suite = s.suites.find((x) => /^[a-z]+$/.test(x));
    if (uri && suite) return { uri: uri.replace(/\/$/, ''), suite, file: s.file };
  }
  return undefined;
}

/** apt's source files on this machine, in apt's order. */
export function readAptSources(etcApt = '/etc/apt'): AptSource[] {
  const out: AptSource[] = [];
  const main = path.join(etcApt, 'sources.list');
  if (fs.existsSync(main)) out.push(...parseOneLineSources(fs.readFileSync(main, 'utf8'), main));
  const dir = path.join(etcApt, 'sources.list.d');
  const names = fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
  for (const name of names) {
    const file = path.join(dir, name);
    if (name.endsWith('.list')) out.push(...parseOneLineSources(fs.readFileSync(file, 'utf8'), file));
    else if (name.endsWith('.sources')) out.push(...parseDeb822Sources(fs.readFileSync(file, 'utf8'), file));
  }
  return out;
}

/** The mirror of this machine's apt sources; throws one line saying what to add when there is none. */
export function debianMirror(etcApt = '/etc/apt'): DebianMirror {
  const m = pickDebianMirror(readAptSources(etcApt));
  if (!m) {
    throw new Error(`no Debian mirror in apt's sources (${etcApt}/sources.list, ${etcApt}/sources.list.d/*.list|*.sources): `
      + 'add one such as `deb http://MIRROR/debian SUITE main`');
  }
  return m;
}
