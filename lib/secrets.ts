/**
 * Secrets (tokens, keys, presigned URLs) registered here are replaced by "***" in every line the
 * tool prints or logs. Register a secret as soon as it is read.
 */
const secrets = new Set<string>();

export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 6) secrets.add(value);
}

export function redact(text: string): string {
  let out = text;
  // Longest first: a short secret inside a longer one (an access key id inside a presigned URL)
  // must not break the longer one's match.
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) out = out.split(s).join('***');
  // Presigned URL signatures, wherever they come from.
  out = out.replace(/([?&](?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature)=)[^&\s"']+/gi, '$1***');
  return out;
}
