/**
 * An exact set of record ids, kept as UTF-8 bytes in one growing buffer with an open-addressing
 * table of entry numbers: about 20 bytes an id (80,000 ids: ~2 MB) outside the JavaScript heap,
 * where a `Set<string>` keeps each id as a heap string plus its table entry (~100 bytes an id)
 * and, living as long as the run, raises the heap size the garbage collector lets grow before it
 * runs. Exact: a repeat is found by comparing the bytes, never by a hash alone; an id that is not
 * well-formed UTF-16 (a lone surrogate, which UTF-8 would turn into U+FFFD) is kept as its UTF-16
 * code units after a 0xFF byte, which no UTF-8 text holds.
 */
export class IdSet {
  /** The ids' bytes, one after another. */
  private bytes: Buffer = Buffer.allocUnsafe(64 * 1024);
  private used = 0;
  /** Entry i's bytes: starts[i] .. starts[i + 1] (starts[size] === used). */
  private starts = new Uint32Array(1024);
  /** Entry number + 1 per slot (0: empty); power-of-two length, at most half full. */
  private slots = new Uint32Array(2048);
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Add `id`; false when it was already in the set. */
  add(id: string): boolean {
    const key = keyOf(id);
    const len = key ? key.length : Buffer.byteLength(id, 'utf8');
    if (this.used + len > this.bytes.length) this.bytes = grown(this.bytes, this.used + len, this.used);
    if (key) key.copy(this.bytes, this.used);
    else this.bytes.write(id, this.used, len, 'utf8');
    const at = this.used;
    const h = fnv1a(this.bytes, at, at + len);
    const mask = this.slots.length - 1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const e = this.slots[i]!;
      if (e === 0) {
        this.slots[i] = this.count + 1;
        break;
      }
      const s = this.starts[e - 1]!;
      const end = this.starts[e]!;
      if (end - s === len && this.bytes.compare(this.bytes, at, at + len, s, end) === 0) return false;
    }
    this.used += len;
    this.count++;
    if (this.count + 1 > this.starts.length) {
      const next = new Uint32Array(this.starts.length * 2);
      next.set(this.starts);
      this.starts = next;
    }
    this.starts[this.count] = this.used;
    if (this.count * 2 > this.slots.length) this.rehash();
    return true;
  }

  has(id: string): boolean {
    const key = keyOf(id) ?? Buffer.from(id, 'utf8');
    const h = fnv1a(key, 0, key.length);
    const mask = this.slots.length - 1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const e = this.slots[i]!;
      if (e === 0) return false;
      const s = this.starts[e - 1]!;
      const end = this.starts[e]!;
      if (end - s === key.length && key.compare(this.bytes, s, end) === 0) return true;
    }
  }

  private rehash(): void {
    const slots = new Uint32Array(this.slots.length * 2);
    const mask = slots.length - 1;
    for (let e = 0; e < this.count; e++) {
      let i = fnv1a(this.bytes, this.starts[e]!, this.starts[e + 1]!) & mask;
      while (slots[i] !== 0) i = (i + 1) & mask;
      slots[i] = e + 1;
    }
    this.slots = slots;
  }
}

const wellFormed = (String.prototype as { isWellFormed?: () => boolean }).isWellFormed;

/** The bytes kept for an id that is not well-formed UTF-16 (null: its UTF-8 is exact). */
function keyOf(id: string): Buffer | null {
  if (wellFormed ? wellFormed.call(id) : !/[\uD800-\uDFFF]/.test(id)) return null;
  return Buffer.concat([Buffer.from([0xff]), Buffer.from(id, 'utf16le')]);
}

function grown(b: Buffer, need: number, keep: number): Buffer {
  let size = b.length * 2;
  while (size < need) size *= 2;
  const next = Buffer.allocUnsafe(size);
  b.copy(next, 0, 0, keep);
  return next;
}

/** 32-bit FNV-1a of bytes [from, to). */
function fnv1a(b: Uint8Array, from: number, to: number): number {
  let h = 0x811c9dc5;
  for (let i = from; i < to; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h >>> 0;
}
