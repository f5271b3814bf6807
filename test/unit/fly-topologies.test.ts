/**
 * README's two topologies as fly.toml files the tool reads (lib/hosts/fly-config.ts): the repo's
 * `fly.toml` (the stock Chroma image serving the volume: verified through Chroma's API) and
 * `examples/fly.embedded-app.toml` (a RAG app that embeds Chroma: verified as --app-health-url at
 * its check path). Also what `--app-health-url` accepts.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { parse as parseToml } from 'smol-toml';
import { UserError } from '../../lib/common/errors.ts';
import { chooseTarget, isChromaCheckPath, readFlyToml } from '../../lib/hosts/fly-config.ts';
import { parseAppHealthUrl } from '../../lib/serving/app-health.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const EXAMPLE = path.join(REPO, 'examples', 'fly.embedded-app.toml');
const STOCK = path.join(REPO, 'fly.toml');
/** chooseTarget's view of commander: --volume left at its default. */
const defaults = { getOptionValueSource: () => 'default' as const };

describe('the two topologies\' fly.toml', () => {
  it('examples/fly.embedded-app.toml: target, volume, port, and /health as the app\'s health path', () => {
    assert.deepEqual(readFlyToml(EXAMPLE), { file: EXAMPLE, app: 'my-rag-app', volume: '/data', internalPort: 8080, checkPath: '/health' });
    assert.deepEqual(chooseTarget({ volume: '/data', config: EXAMPLE }, defaults), {
      target: 'fly:my-rag-app', targetSource: EXAMPLE, volume: '/data', machine: undefined, internalPort: 8080, appHealthPath: '/health',
    });
    // Its app opens the dir a default deploy replaces: CHROMA_PATH = --volume + --db-dir chroma_db.
    const doc = parseToml(fs.readFileSync(EXAMPLE, 'utf8')) as { env: Record<string, string>; mounts: { destination: string } };
    assert.equal(doc.env.CHROMA_PATH, `${doc.mounts.destination}/chroma_db`);
  });

  it('the repo\'s fly.toml (the stock Chroma image): its check is Chroma\'s heartbeat, so no app health path', () => {
    const toml = readFlyToml(STOCK)!;
    assert.equal(toml.checkPath, '/api/v2/heartbeat');
    const choice = chooseTarget({ volume: '/data', config: STOCK }, defaults);
    assert.equal(choice.target, 'fly:my-chroma');
    assert.equal(choice.internalPort, 8000);
    assert.equal(choice.appHealthPath, undefined);
  });

  it('tells Chroma\'s endpoints from an app\'s health path', () => {
    for (const p of ['/api/v2/heartbeat', '/api/v1/heartbeat', '/api/v2/heartbeat/', '/api/v2/healthcheck', '/api/v2']) assert.ok(isChromaCheckPath(p), p);
    for (const p of ['/health', '/healthz', '/api/health', '/']) assert.ok(!isChromaCheckPath(p), p);
  });
});

describe('--app-health-url', () => {
  it('takes an http(s) URL with its path as given', () => {
    assert.equal(parseAppHealthUrl('http://127.0.0.1:8080/health'), 'http://127.0.0.1:8080/health');
    assert.equal(parseAppHealthUrl('https://my-rag-app.fly.dev/'), 'https://my-rag-app.fly.dev/');
    assert.equal(parseAppHealthUrl(undefined), undefined);
  });

  it('refuses, in one line and never echoing a secret: credentials, a query or fragment, no scheme', () => {
    const refused = (raw: string, re: RegExp) => assert.throws(() => parseAppHealthUrl(raw), (e: unknown) => e instanceof UserError && re.test(e.message) && !e.message.includes('\n'));
    refused('http://app:s3cr3tpass@10.0.0.1:8080/health', /^--app-health-url http:\/\/\*\*\*@10\.0\.0\.1:8080\/health: credentials in a URL are refused/);
    assert.throws(() => parseAppHealthUrl('http://app:s3cr3tpass@10.0.0.1:8080/health'), (e: unknown) => !(e as Error).message.includes('s3cr3tpass'));
    refused('http://127.0.0.1:8080/health?token=abc123secret', /^--app-health-url http:\/\/127\.0\.0\.1:8080\/health\?\.\.\.: a query or fragment is refused/);
    assert.throws(() => parseAppHealthUrl('http://127.0.0.1:8080/health?token=abc123secret'), (e: unknown) => !(e as Error).message.includes('abc123secret'));
    refused('http://127.0.0.1:8080/health#x', /a query or fragment is refused/);
    refused('127.0.0.1:8080', /must be http:\/\/ or https:\/\/; did you mean http:\/\/127\.0\.0\.1:8080\?/);
    refused('ftp://host/health', /must be http:\/\/ or https:\/\//);
  });
});
