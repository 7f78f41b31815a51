import { ChronoError } from '../errors';
import type { Volume } from '../volume/volume';
import { ForgetReport, forget } from './forget';
import { listPins, pin, unpin } from './pins';
import { RetentionPolicy, isEmptyPolicy, policyFromJson, policyToJson } from './policy';

/** The policy in the volume's config.json (empty when none is set). */
export function configuredPolicy(volume: Volume): RetentionPolicy {
  return policyFromJson(volume.directory.readConfig().retention);
}

/** Stores the policy in config.json (durably), keeping the archive settings as they are. */
export function saveConfiguredPolicy(volume: Volume, policy: RetentionPolicy): void {
  const c = volume.directory.readConfig();
  volume.directory.writeConfig({ ...c, retention: isEmptyPolicy(policy) ? undefined : policyToJson(policy) });
}

/**
 * Forget with the given policy (stored first when `save`), else the configured one. No policy
 * at all is a usage error: forgetting nothing by accident is fine, by default is not a policy.
 */
export function forgetRequest(volume: Volume, o: { policy?: Record<string, unknown>; save?: boolean; dryRun?: boolean }): ForgetReport {
  const given = o.policy ? policyFromJson(o.policy) : {};
  if (o.save) saveConfiguredPolicy(volume, given);
  const policy = isEmptyPolicy(given) ? configuredPolicy(volume) : given;
  if (isEmptyPolicy(policy)) throw new ChronoError('BAD_USAGE', 'no retention policy: give --keep-* options, or store one with --save');
  return forget(volume, policy, { dryRun: o.dryRun });
}

/** A control-socket request: { op: 'pin' | 'unpin' | 'pins' | 'forget' | 'prune', … }. */
export function retentionRequest(volume: Volume, p: Record<string, unknown>): unknown {
  switch (p.op) {
    case 'pin':
      return pin(volume, String(p.point ?? ''), String(p.reason ?? ''));
    case 'unpin': {
      // A clone's pin goes with the clone (clone --delete); any other holder's may be released by hand.
      const holder = p.holder === undefined ? 'user' : String(p.holder);
      if (holder.startsWith('clone:')) throw new ChronoError('BAD_USAGE', `${holder}'s pin goes when the clone is discarded (chronovol clone --delete)`);
      return unpin(volume, String(p.point ?? ''), holder);
    }
    case 'pins':
      return listPins(volume);
    case 'forget':
      return forgetRequest(volume, { policy: p.policy as Record<string, unknown> | undefined, save: !!p.save, dryRun: !!p.dryRun });
    case 'prune':
      return volume.prune({
        dryRun: !!p.dryRun,
        maxRewriteBytes: typeof p.maxRewriteBytes === 'number' ? p.maxRewriteBytes : undefined,
        rewriteThreshold: typeof p.rewriteThreshold === 'number' ? p.rewriteThreshold : undefined,
        busyShare: typeof p.busyShare === 'number' ? p.busyShare : undefined,
      });
    default:
      throw new ChronoError('BAD_ARGUMENT', `unknown retention op ${String(p.op)}`);
  }
}
