/**
 * block number → int32, for the memtable's per-block chain heads: open addressing with linear
 * probing over typed arrays. A Map<number, number> cost about 160 ns per add on the write path
 * (32 of them per 128 KiB write) and garbage for the collector; this costs a fraction of that.
 * Keys are also kept in first-insertion order, which freeze() relies on. No deletion: a
 * memtable is frozen and replaced, never shrunk.
 */
export class BlockMap {
  private slotKeys: Float64Array;
  private slotValues: Int32Array;
  /** Slot holds a key: slotValues alone cannot say, any int32 is a valid value. */
  private used: Uint8Array;
  private order: Float64Array;
  private n = 0;
  private mask: number;
  /** 32 - log2(capacity): the product's top bits pick the slot. */
  private shift: number;

  constructor(initialCapacity = 1024) {
    let cap = 16;
    while (cap < initialCapacity * 2) cap *= 2;
    this.slotKeys = new Float64Array(cap);
    this.slotValues = new Int32Array(cap);
    this.used = new Uint8Array(cap);
    this.order = new Float64Array(cap >> 1);
    this.mask = cap - 1;
    this.shift = 32 - Math.log2(cap);
  }

  get size(): number {
    return this.n;
  }

  /** Keys in the order they were first set. */
  keys(): Float64Array {
    return this.order.subarray(0, this.n);
  }

  /** The value for `key`, or `missing`. */
  get(key: number, missing: number): number {
    for (let i = this.slot(key); this.used[i]; i = (i + 1) & this.mask) {
      if (this.slotKeys[i] === key) return this.slotValues[i];
    }
    return missing;
  }

  /** Sets `key` and returns its previous value, or `missing` if it had none. */
  swap(key: number, value: number, missing: number): number {
    let i = this.slot(key);
    for (; this.used[i]; i = (i + 1) & this.mask) {
      if (this.slotKeys[i] === key) {
        const old = this.slotValues[i];
        this.slotValues[i] = value;
        return old;
      }
    }
    this.used[i] = 1;
    this.slotKeys[i] = key;
    this.slotValues[i] = value;
    this.order[this.n++] = key;
    if (this.n * 2 > this.mask) this.grow(); // load factor at most a half
    return missing;
  }

  /** Fibonacci hashing (the product's top bits) of the key's low and high 32 bits mixed. */
  private slot(key: number): number {
    const lo = key >>> 0;
    const hi = (key / 4294967296) >>> 0;
    return Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1) >>> this.shift;
  }

  private grow(): void {
    const keys = this.slotKeys;
    const values = this.slotValues;
    const used = this.used;
    const cap = keys.length * 2;
    this.slotKeys = new Float64Array(cap);
    this.slotValues = new Int32Array(cap);
    this.used = new Uint8Array(cap);
    this.mask = cap - 1;
    this.shift--;
    for (let j = 0; j < keys.length; j++) {
      if (!used[j]) continue;
      let i = this.slot(keys[j]);
      while (this.used[i]) i = (i + 1) & this.mask;
      this.used[i] = 1;
      this.slotKeys[i] = keys[j];
      this.slotValues[i] = values[j];
    }
    const order = new Float64Array(cap >> 1);
    order.set(this.order.subarray(0, this.n));
    this.order = order;
  }
}
