/**
 * How many chunks to keep in flight, from what the upload measured (issue 18: "concurrency chosen
 * from the measured throughput").
 *
 * Lanes hide what a chunk costs besides its bytes: the remote check after it (size + sha256, a
 * round trip) and the put's own start. While one chunk is being checked another must be sending,
 * so the pipe needs 1 + ceil(overhead / t) lanes, t being one chunk's transfer time alone at the
 * link's rate. More lanes than that add nothing on a full link and cost at the end: the lanes share
 * the link, so the last chunks all arrive together at the very end, and the remote extractor (which
 * takes the chunks in order) has all of them left to extract after the last byte; with fewer lanes
 * they arrive in order and it keeps pace. At least 2: a put's end drains the pipe, and the next
 * put must already be sending by then. At most the user's --upload-concurrency.
 *
 * t comes from a chunk's own upload: `uploadMs` while `sharing` uploads (itself included) shared the
 * link, so alone it takes about uploadMs / sharing.
 */
export function lanesFor(m: { uploadMs: number; sharing: number; overheadMs: number }, max: number): number {
  const floor = Math.min(2, max);
  const alone = m.uploadMs / Math.max(1, m.sharing);
  if (!(alone > 0) || !Number.isFinite(m.overheadMs)) return max;
  const needed = 1 + Math.ceil(Math.max(0, m.overheadMs) / alone);
  return Math.max(floor, Math.min(max, needed));
}
