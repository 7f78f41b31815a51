/**
 * Counts one more holder of `key` in `counts` and returns its release: callable any number of
 * times, it counts down once, and removes the key when the last holder has gone.
 */
export function countedHold<K>(counts: Map<K, number>, key: K): () => void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const n = (counts.get(key) ?? 1) - 1;
    if (n > 0) counts.set(key, n);
    else counts.delete(key);
  };
}
