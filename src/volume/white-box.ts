import type { Core } from './core';
import type { Volume } from './volume';

/**
 * White-box access to a volume's parts, for tests, benchmarks and the volume's own tools
 * (recover). No src file outside volume/ imports this (test/architecture.test.ts): everything
 * else goes through Volume's methods.
 */
const cores = new WeakMap<Volume, Core>();

export function registerCore(volume: Volume, core: Core): void {
  cores.set(volume, core);
}

export function whiteBox(volume: Volume): Core {
  const core = cores.get(volume);
  if (!core) throw new Error('not an open Volume');
  return core;
}
