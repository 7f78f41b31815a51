/**
 * Seeds for the randomized crash and property tests. CI runs a fixed corpus (the same every
 * run, so a failure there is reproducible as it stands) plus one random seed per test (printed,
 * so a new failure can be replayed). CHRONOVOL_SEED=<n> runs that one seed only;
 * CHRONOVOL_SEEDS=<n> adds n more random seeds (larger runs, outside CI: scripts/crash-sweep).
 */
export function seedsFor(corpus: readonly number[]): Array<{ seed: number; source: 'replay' | 'corpus' | 'random' }> {
  const env = process.env.CHRONOVOL_SEED;
  if (env !== undefined && env !== '') return [{ seed: Number(env) >>> 0, source: 'replay' }];
  const extra = Math.max(1, Number(process.env.CHRONOVOL_SEEDS ?? 1) || 1);
  const random = Array.from({ length: extra }, () => ({ seed: Math.floor(Math.random() * 2 ** 32), source: 'random' as const }));
  return [...corpus.map((seed) => ({ seed, source: 'corpus' as const })), ...random];
}
