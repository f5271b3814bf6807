/**
 * Streaming a big directory allocates a fresh buffer for every read (node-tar: one per MiB) and
 * V8 frees such buffers only when it collects, which for memory outside its heap it does after
 * some 32-64 MB have piled up; buffers that waited in a stream queue have left the young
 * generation, so only a full collection frees them. One whenever buffers hold more than ~8 MB
 * keeps that bounded, at a few milliseconds each (the heap of a pack is small). The collection is
 * lib/common/full-collection.ts's (a no-op where V8's gc() cannot be exposed).
 */
import { garbageCollector } from '../common/full-collection.ts';

/**
 * Counts bytes streamed; every `checkEveryBytes` looks at the memory held by buffers and, above
 * `limitBytes`, asks V8 for a full collection (so only as often as the garbage needs it).
 */
export function bufferGarbageCollector(limitBytes = 8 * 1024 * 1024, checkEveryBytes = 1024 * 1024): (bytes: number) => void {
  return garbageCollector(() => process.memoryUsage().arrayBuffers, limitBytes, checkEveryBytes);
}
