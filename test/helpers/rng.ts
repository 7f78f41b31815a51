/** Seeded PRNG (mulberry32). Tests print the seed; CHRONOVOL_SEED=<n> replays one run. */
export class Rng {
  private s: number;
  constructor(readonly seed: number) {
    this.s = seed >>> 0;
  }
  static fromEnv(): Rng {
    const env = process.env.CHRONOVOL_SEED;
    return new Rng(env ? Number(env) : Math.floor(Math.random() * 2 ** 32));
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  bool(p = 0.5): boolean {
    return this.next() < p;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

/** Runs `body`, adding the seed to any failure so it can be replayed. */
export async function withSeed<T>(rng: Rng, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    const e = err as Error;
    e.message = `${e.message}\n    (replay with CHRONOVOL_SEED=${rng.seed})`;
    throw e;
  }
}
