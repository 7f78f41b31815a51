import { ChronoError, isChronoError } from '../errors';

/** How the S3 store retries a request that failed in a way that may pass on a second try. */
export interface RetryPolicy {
  /** Tries in all, the first included. */
  maxAttempts: number;
  /** The backoff before try n+1 is drawn from [0, min(maxDelayMs, baseDelayMs * 2^n)) (full jitter). */
  baseDelayMs: number;
  maxDelayMs: number;
}

/**
 * Errors worth another try: 5xx, throttling (503 SlowDown, 429), request timeouts, and the
 * network failing under us (resets, refused connections while a server restarts, sockets that
 * stall past their idle timeout). Everything else (403, 404, a bad request) fails at once.
 */
export function isRetryable(err: unknown): boolean {
  if (isChronoError(err)) return err.details.retryable === true;
  const e = err as { name?: string; code?: string; $metadata?: { httpStatusCode?: number }; $retryable?: unknown; cause?: unknown };
  if (!e || typeof e !== 'object') return false;
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined && (status >= 500 || status === 429 || status === 408)) return true;
  if (e.$retryable) return true;
  const names = ['SlowDown', 'Throttling', 'ThrottlingException', 'RequestTimeout', 'RequestTimeoutException', 'TimeoutError', 'InternalError', 'ServiceUnavailable'];
  if (e.name && names.includes(e.name)) return true;
  const codes = ['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'ESOCKETTIMEDOUT', 'EAI_AGAIN', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET'];
  if (e.code && codes.includes(e.code)) return true;
  // The SDK wraps some network errors; a response parsed from a cut-off body has no status.
  if (e.name === 'Error' && /socket hang up|aborted|premature close/i.test(String((err as Error).message))) return true;
  return e.cause !== undefined && e.cause !== err && isRetryable(e.cause);
}

export function backoffMs(policy: RetryPolicy, attempt: number): number {
  return Math.random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
}

/** A short description of an SDK or network error for messages and details. */
export function describeError(err: unknown): { code: string; status?: number; message: string } {
  const e = err as { name?: string; code?: string; Code?: string; $metadata?: { httpStatusCode?: number }; message?: string };
  return { code: e?.Code ?? e?.code ?? e?.name ?? 'Error', status: e?.$metadata?.httpStatusCode, message: e?.message ?? String(err) };
}

/**
 * Runs `op` until it succeeds, fails in a way not worth retrying, or runs out of tries; then
 * the last error is mapped by `fail`. `op` must be idempotent (every S3 request we make is:
 * puts of the same bytes under the same key, parts by number, reads, deletes).
 */
export async function withRetries<T>(policy: RetryPolicy, what: string, op: (attempt: number) => Promise<T>, fail: (err: unknown, attempts: number) => Error): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await op(attempt);
    } catch (err) {
      if (!isRetryable(err) || attempt + 1 >= policy.maxAttempts) throw fail(err, attempt + 1);
      await new Promise((r) => setTimeout(r, backoffMs(policy, attempt)));
    }
  }
}

/** The failure of a request that was retried in vain, or could not be retried. */
export function unavailable(what: string, bucket: string, err: unknown, attempts: number): ChronoError {
  if (isChronoError(err) && !err.details.retryable) return err;
  const d = describeError(err);
  return new ChronoError('ARCHIVE_UNAVAILABLE', `S3 ${what} failed after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${d.code}${d.status ? ` (HTTP ${d.status})` : ''}: ${d.message}`, { bucket, attempts, ...d }, err);
}
