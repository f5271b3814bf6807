/**
 * The Qdrant stand-in against its compact contract (test/fixtures/qdrant-api/schema.json), through
 * the client chroma-ferry uses (@qdrant/js-client-rest): what the tool will send soon (cluster
 * settings at creation, write ordering, aliases) is accepted and behaves as Qdrant does; anything
 * outside the contract (an operation, a query parameter or value, a body field or value) is refused
 * and recorded as a violation, and changes nothing.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { QdrantClient } from '@qdrant/js-client-rest';
import { startQdrantStandin, type QdrantStandin } from './helpers/qdrant-standin.ts';

describe('Qdrant stand-in: the compact v1.19 contract', () => {
  let qdrant: QdrantStandin;
  let client: QdrantClient;
  beforeEach(async () => {
    qdrant = await startQdrantStandin();
    client = new QdrantClient({ url: qdrant.url, checkCompatibility: false });
  });
  afterEach(async () => {
    await qdrant.close();
  });

  it('accepts cluster settings at creation, wait and ordering on upsert, and the alias operations', async () => {
    await client.createCollection('docs_v1', { vectors: { size: 3, distance: 'Dot' }, shard_number: 2, replication_factor: 2, write_consistency_factor: 1 });
    await client.createCollection('docs_v2', { vectors: { size: 3, distance: 'Dot' } });
    const up = await client.upsert('docs_v1', { wait: true, ordering: 'strong', points: [{ id: 1, vector: [1, 2, 3], payload: { a: 1 } }] });
    assert.equal(up.status, 'completed');
    await client.upsert('docs_v1', { ordering: 'weak', points: [{ id: '0b5e0001-1c2d-4e5f-8a9b-000000000001', vector: [0, 0, 1] }] });

    await client.updateCollectionAliases({ actions: [{ create_alias: { collection_name: 'docs_v1', alias_name: 'docs' } }] });
    assert.equal((await client.count('docs', { exact: true })).count, 2, 'a collection is read through its alias');
    await client.upsert('docs', { wait: true, points: [{ id: 2, vector: [1, 1, 1] }] });
    assert.equal(qdrant.collections.get('docs_v1')!.points.size, 3, 'and written through it');
    assert.deepEqual((await client.getAliases()).aliases, [{ alias_name: 'docs', collection_name: 'docs_v1' }]);

    // The switch: one request, applied as a whole.
    await client.updateCollectionAliases({ actions: [
      { delete_alias: { alias_name: 'docs' } },
      { create_alias: { collection_name: 'docs_v2', alias_name: 'docs' } },
      { create_alias: { collection_name: 'docs_v1', alias_name: 'docs_old' } },
    ] });
    assert.deepEqual((await client.getCollectionAliases('docs_v2')).aliases, [{ alias_name: 'docs', collection_name: 'docs_v2' }]);
    assert.equal((await client.count('docs', { exact: true })).count, 0);
    await client.updateCollectionAliases({ actions: [{ rename_alias: { old_alias_name: 'docs_old', new_alias_name: 'docs_prev' } }] });
    assert.deepEqual((await client.getCollectionAliases('docs_v1')).aliases, [{ alias_name: 'docs_prev', collection_name: 'docs_v1' }]);

    // A failing action leaves every alias as it was.
    await assert.rejects(client.updateCollectionAliases({ actions: [
      { delete_alias: { alias_name: 'docs' } },
      { create_alias: { collection_name: 'no_such', alias_name: 'docs' } },
    ] }), (e: { status?: number }) => e.status === 404);
    assert.deepEqual([...qdrant.aliases], [['docs', 'docs_v2'], ['docs_prev', 'docs_v1']]);
    await assert.rejects(client.updateCollectionAliases({ actions: [{ create_alias: { collection_name: 'docs_v1', alias_name: 'docs_v2' } }] }),
      (e: { status?: number }) => e.status === 409, 'an alias cannot take a collection\'s name');
    await assert.rejects(client.createCollection('docs', { vectors: { size: 3, distance: 'Dot' } }),
      (e: { status?: number }) => e.status === 400, 'nor a collection an alias\'s name');

    await client.deleteCollection('docs_v1');
    assert.deepEqual((await client.getAliases()).aliases, [{ alias_name: 'docs', collection_name: 'docs_v2' }], 'its aliases went with it');
    assert.deepEqual(qdrant.violations, []);
  });

  it('refuses and records anything outside the contract, changing nothing', async () => {
    await client.createCollection('c', { vectors: { size: 2, distance: 'Euclid' } });
    const send = async (method: string, path: string, body?: unknown) => {
      const r = await fetch(`${qdrant.url}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: r.status, error: ((await r.json()) as { status: { error?: string } }).status.error ?? '' };
    };
    const point = { id: 1, vector: [1, 2] };
    const refused: [number, RegExp, Promise<{ status: number; error: string }>][] = [
      [404, /no such operation/, send('POST', '/collections/c/points/search', { vector: [1, 2], limit: 1 })],
      [404, /no such operation/, send('PATCH', '/collections/c', { optimizers_config: {} })],
      [400, /unknown query parameter timeout/, send('PUT', '/collections/c/points?wait=true&timeout=5', { points: [point] })],
      [400, /query does not match/, send('PUT', '/collections/c/points?ordering=eventual', { points: [point] })],
      [400, /query does not match/, send('PUT', '/collections/c/points?wait=yes', { points: [point] })],
      [400, /unknown query parameter wait/, send('POST', '/collections/c/points/count?wait=true', { exact: true })],
      [400, /body does not match.*additionalProperties/, send('POST', '/collections/c/points/scroll', { limit: 5, filter: { must: [] } })],
      [400, /body does not match.*additionalProperties/, send('POST', '/collections/c/points/scroll', { limit: 5, with_vectors: true })],
      [400, /body does not match/, send('POST', '/collections/c/points/scroll', { limit: 0 })],
      [400, /body does not match/, send('PUT', '/collections/c/points', { points: [{ id: 'not-a-uuid', vector: [1, 2] }] })],
      [400, /body does not match/, send('PUT', '/collections/c/points', { points: [{ id: -1, vector: [1, 2] }] })],
      [400, /body does not match/, send('PUT', '/collections/c/points', { batch: { ids: [1], vectors: [[1, 2]] } })],
      [400, /body does not match/, send('PUT', '/collections/d', { vectors: { size: 2, distance: 'Euclid', on_disk: true } })],
      [400, /body does not match/, send('PUT', '/collections/d', { vectors: { size: 2, distance: 'Euclid' }, shard_number: 0 })],
      [400, /body does not match/, send('POST', '/collections/aliases', { actions: [{ create_alias: { collection_name: 'c', alias_name: 'a' }, delete_alias: { alias_name: 'b' } }] })],
      [400, /takes no body/, send('DELETE', '/collections/c', { force: true })],
    ];
    for (const [status, why, pending] of refused) {
      const r = await pending;
      assert.equal(r.status, status, `${why}: ${r.error}`);
      assert.match(r.error, why);
    }
    assert.equal(qdrant.violations.length, refused.length, qdrant.violations.join('\n'));
    assert.deepEqual([...qdrant.collections.keys()], ['c']);
    assert.equal(qdrant.collections.get('c')!.points.size, 0);
    assert.equal(qdrant.aliases.size, 0);
  });
});
