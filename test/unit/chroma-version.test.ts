/**
 * The Chroma version check's pure parts: the release table (which release ships which migration,
 * which migrations a release knows), the comparison of a source with a server, the parse of the
 * remote read of the live dir, and the check's place in `--plan`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  compareReleases, describeReleaseKnowing, describeReleaseNeeded, firstReleaseWith, migrationsKnownBy, NEWEST_KNOWN_RELEASE, parseRelease,
  releaseNeededBy,
} from '../../lib/chroma/releases.ts';
import { levelsOf } from '../../lib/chroma/migrations.ts';
import { chromaVersionPlan, judgeVersions } from '../../lib/chroma/version-check.ts';
import { remoteLayout } from '../../lib/remote/layout.ts';
import { parseLiveMigrations } from '../../lib/remote/live-migrations.ts';
import { renderShCommand } from '../../lib/remote/shell.ts';

/** What Chroma 1.0.x writes (checked on the server the npm package runs). */
const V1_0 = { embeddings_queue: 2, metadb: 5, sysdb: 9 };
const VERSION_URL = 'http://db1:8000/api/v2/version';

describe('the release table', () => {
  it('names the first release of each migration; older ones are in every release with chroma.sqlite3; newer ones are unknown', () => {
    assert.equal(firstReleaseWith('sysdb', 10), '1.3.0');
    assert.equal(firstReleaseWith('metadb', 6), '1.5.0');
    assert.equal(firstReleaseWith('metadb', 5), '1.0.0');
    assert.equal(firstReleaseWith('sysdb', 4), '0.4.15');
    assert.equal(firstReleaseWith('sysdb', 3), '0.4.0');
    assert.equal(firstReleaseWith('embeddings_queue', 1), '0.4.0');
    assert.equal(firstReleaseWith('sysdb', 11), undefined);
    assert.equal(firstReleaseWith('vectordb', 1), undefined);
    assert.equal(NEWEST_KNOWN_RELEASE, '1.5.0');
  });

  it('the oldest release a dir needs is the newest first release of its migrations', () => {
    assert.deepEqual(releaseNeededBy(V1_0), { known: true, release: '1.0.0' });
    assert.deepEqual(releaseNeededBy({ ...V1_0, sysdb: 10 }), { known: true, release: '1.3.0' });
    assert.deepEqual(releaseNeededBy({ embeddings_queue: 1, metadb: 3, sysdb: 3 }), { known: true, release: '0.4.6' });
    assert.deepEqual(releaseNeededBy({ ...V1_0, sysdb: 99 }), { known: false, unknown: [{ dir: 'sysdb', version: 99 }] });
    assert.equal(describeReleaseNeeded(releaseNeededBy({ ...V1_0, sysdb: 10 })), 'Chroma >= 1.3.0');
    assert.equal(describeReleaseNeeded(releaseNeededBy({ ...V1_0, sysdb: 99 })), 'a Chroma newer than 1.5.0');
  });

  it('the migrations a release knows, and the releases that know exactly a set of migrations', () => {
    assert.deepEqual(migrationsKnownBy('1.0.0'), { levels: V1_0, atLeast: false });
    assert.deepEqual(migrationsKnownBy('1.2.9'), { levels: V1_0, atLeast: false });
    assert.deepEqual(migrationsKnownBy('1.3.0')?.levels, { ...V1_0, sysdb: 10 });
    assert.deepEqual(migrationsKnownBy('0.5.5')?.levels, { embeddings_queue: 1, metadb: 3, sysdb: 7 });
    assert.deepEqual(migrationsKnownBy('1.7.2'), { levels: { embeddings_queue: 2, metadb: 6, sysdb: 10 }, atLeast: true });
    assert.equal(migrationsKnownBy('0.3.29'), undefined, '0.3.x has no chroma.sqlite3');
    assert.equal(migrationsKnownBy('latest'), undefined);
    assert.equal(describeReleaseKnowing(V1_0), 'Chroma >= 1.0.0, < 1.3.0');
    assert.equal(describeReleaseKnowing({ embeddings_queue: 2, metadb: 6, sysdb: 10 }), 'Chroma >= 1.5.0');
    assert.equal(describeReleaseKnowing({ embeddings_queue: 2, metadb: 4, sysdb: 9 }), 'Chroma >= 0.5.6, < 1.0.0');
  });

  it('release numbers: parsed and ordered numerically, suffixes ignored', () => {
    assert.deepEqual(parseRelease('1.3.0-rc1'), [1, 3, 0]);
    assert.deepEqual(parseRelease(' 0.4.15 '), [0, 4, 15]);
    assert.equal(parseRelease('1.3'), undefined);
    assert.ok(compareReleases('0.4.15', '0.4.6') > 0);
    assert.ok(compareReleases('1.10.0', '1.9.9') > 0);
    assert.equal(compareReleases('1.0.0', '1.0.0-beta'), 0);
  });
});

describe('the comparison of the source with the server', () => {
  it('the same migrations: passes', () => {
    const v = judgeVersions(V1_0, { via: 'live-dir', levels: V1_0 });
    assert.equal(v.outcome, 'same');
    assert.equal(judgeVersions(V1_0, { via: 'server-version', release: '1.2.1', endpoint: VERSION_URL }).outcome, 'same');
  });

  it('a source that needs a newer Chroma: refused in one line naming both versions and the fix', () => {
    const live = judgeVersions({ ...V1_0, sysdb: 10 }, { via: 'live-dir', levels: V1_0 });
    assert.deepEqual(live, {
      outcome: 'refused',
      line: 'the source needs a newer Chroma than the server: source written by Chroma >= 1.3.0 (sysdb 10), server Chroma >= 1.0.0, < 1.3.0 ' +
        '(its live dir has sysdb 9); upgrade the server to Chroma >= 1.3.0 first, or build the data with Chroma >= 1.0.0, < 1.3.0',
    });
    const byVersion = judgeVersions({ ...V1_0, metadb: 6, sysdb: 10 }, { via: 'server-version', release: '1.0.0', endpoint: VERSION_URL });
    assert.deepEqual(byVersion, {
      outcome: 'refused',
      line: 'the source needs a newer Chroma than the server: source written by Chroma >= 1.5.0 (metadb 6, sysdb 10), server Chroma 1.0.0 ' +
        `(by ${VERSION_URL}; that release knows metadb 5, sysdb 9); upgrade the server to Chroma >= 1.5.0 first, or build the data with Chroma 1.0.0`,
    });
    const future = judgeVersions({ ...V1_0, sysdb: 99 }, { via: 'server-version', release: '1.5.0', endpoint: VERSION_URL });
    assert.equal(future.outcome, 'refused');
    assert.match((future as { line: string }).line, /source written by a Chroma newer than 1\.5\.0 \(sysdb 99\).*upgrade the server to the Chroma that wrote the source first/);
    // A dir the server's live dir does not have at all counts as version 0.
    assert.equal(judgeVersions({ ...V1_0, vectordb: 1 }, { via: 'live-dir', levels: V1_0 }).outcome, 'refused');
  });

  it('an older source: deployed, with the warning that the server upgrades it in place, one way', () => {
    const v = judgeVersions({ ...V1_0, sysdb: 8 }, { via: 'live-dir', levels: V1_0 });
    assert.equal(v.outcome, 'source-older');
    assert.equal((v as { note: string }).note, 'the server (Chroma >= 1.0.0, < 1.3.0) will upgrade the deployed data in place when it opens it (sysdb 8 -> 9), ' +
      'one way: no older Chroma opens it afterwards; the backup this deploy takes is the way back');
    const old = judgeVersions({ embeddings_queue: 1, metadb: 3, sysdb: 7 }, { via: 'server-version', release: '1.3.0', endpoint: VERSION_URL });
    assert.equal(old.outcome, 'source-older');
    assert.match((old as { note: string }).note, /Chroma 1\.3\.0\) will .*\(embeddings_queue 1 -> 2, metadb 3 -> 5, sysdb 7 -> 10\)/);
    assert.deepEqual((old as { source: unknown }).source, { writtenBy: 'Chroma >= 0.5.4', migrations: { embeddings_queue: 1, metadb: 3, sysdb: 7 } });
  });

  it('what cannot be told is skipped with the reason, never refused or passed', () => {
    const unknownServer = judgeVersions(V1_0, { via: 'server-version', release: '0.3.29', endpoint: VERSION_URL });
    assert.equal(unknownServer.outcome, 'skipped');
    assert.match((unknownServer as { note: string }).note, /says "0\.3\.29", not a Chroma release with chroma\.sqlite3/);
    // A server newer than the table may know a migration newer than the table.
    const newer = judgeVersions({ ...V1_0, sysdb: 11 }, { via: 'server-version', release: '1.9.0', endpoint: VERSION_URL });
    assert.equal(newer.outcome, 'skipped');
    assert.match((newer as { note: string }).note, /sysdb 11, newer than this tool's release table \(up to 1\.5\.0\), and the server runs Chroma 1\.9\.0/);
    // ... but what the table knows, it still compares.
    assert.equal(judgeVersions({ ...V1_0, sysdb: 8 }, { via: 'server-version', release: '1.9.0', endpoint: VERSION_URL }).outcome, 'source-older');
  });
});

describe('the live dir read on the remote', () => {
  it('parses the levels, and says why there are none', () => {
    assert.deepEqual(parseLiveMigrations('migration=embeddings_queue 2\nmigration=metadb 5\nmigration=sysdb 9\n'), { levels: V1_0 });
    assert.deepEqual(parseLiveMigrations('live=absent\n'), { unavailable: 'no live dir (chroma.sqlite3) on the volume yet' });
    assert.deepEqual(parseLiveMigrations('python3=absent\n'), { unavailable: 'the remote has no python3 to read the live dir\'s chroma.sqlite3' });
    assert.deepEqual(parseLiveMigrations('error=no such table: migrations\x1b[2J\n'), { unavailable: 'the live dir\'s chroma.sqlite3 could not be read (no such table: migrations?[2J)' });
    assert.deepEqual(parseLiveMigrations(''), { unavailable: 'the live dir\'s chroma.sqlite3 has no migrations recorded' });
  });

  it('rows that are not a dir name and a whole number are ignored', () => {
    assert.deepEqual(levelsOf([{ dir: 'sysdb', version: 9 }, { dir: 'sysdb', version: 3n }, { dir: 'metadb', version: '5' },
      { dir: 'x; rm -rf /', version: 1 }, { dir: 'metadb', version: '6a' }, { dir: 'metadb', version: -1 }]), { sysdb: 9, metadb: 5 });
  });

  it('the script is constant code: the live dir is its only argument', () => {
    const layout = remoteLayout('/data $(touch x)', 'chroma_db');
    const plan = chromaVersionPlan({
      manifest: { schemaVersion: [{ dir: 'embeddings_queue', version: 2 }, { dir: 'metadb', version: 5 }, { dir: 'sysdb', version: 9 }] },
      layout, o: { healthUrl: 'http://db1:8000/' },
      remote: (script, expect) => ({ what: script.title, via: 'test', command: renderShCommand(script), expect }),
    });
    assert.equal(plan.commands.length, 1);
    const [cmd] = plan.commands;
    assert.ok(cmd!.command.endsWith(` ferry '/data $(touch x)/chroma_db'`), cmd!.command);
    assert.match(cmd!.expect!, /at least the source's embeddings_queue 2, metadb 5, sysdb 9 \(written by Chroma >= 1\.0\.0\)/);
    assert.match(cmd!.expect!, /GET http:\/\/db1:8000\/api\/v2\/version must say >= 1\.0\.0/);
    // The read starts before the source is read, so it runs (and is printed) for a source without migrations too.
    const none = chromaVersionPlan({ manifest: { schemaVersion: [] }, layout, o: {}, remote: (script, expect) => ({ what: script.title, via: 'test', command: renderShCommand(script), expect }) });
    assert.deepEqual(none.notes, ['the source records no migrations: the Chroma version check is skipped']);
    assert.deepEqual(none.commands.map((c) => [c.command, c.expect]), [[cmd!.command, 'not used: the source records no migrations']]);
  });
});
