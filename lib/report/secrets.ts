/**
 * Secrets (tokens, keys, presigned URLs) registered here are replaced by "***" in every line the
 * tool prints or logs. Register a secret as soon as it is read. Credentials written into a URL
 * (`scheme://user:pass@host`) are redacted wherever they appear, registered or not.
 */
const secrets = new Set<string>();

export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 6) secrets.add(value);
}

/**
 * `scheme://USERINFO@host...` -> `scheme://***@host...` (up to the last `@` before the path, as URL
 * parsers read it): the one helper for printing a URL a user typed. ssh:// targets keep their
 * login name (it is not a secret and says where the tool goes); only a password would go.
 */
export function redactUrlCredentials(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*):\/\/([^/\s?#"'<>]*)@/gi, (_m, scheme: string, info: string) => {
    if (/^s(?:sh|ftp)$/i.test(scheme) && !info.includes(':')) return `${scheme}://${info}@`;
    if (/^s(?:sh|ftp)$/i.test(scheme)) return `${scheme}://${info.slice(0, info.indexOf(':'))}:***@`;
    return `${scheme}://***@`;
  });
}

export function redact(text: string): string {
  let out = text;
  // Longest first: a short secret inside a longer one (an access key id inside a presigned URL)
  // must not break the longer one's match.
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) out = out.split(s).join('***');
  // Presigned URL signatures, wherever they come from.
  out = out.replace(/([?&](?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature)=)[^&\s"']+/gi, '$1***');
  return redactUrlCredentials(out);
}
