/**
 * Full-jitter backoff, as the Go SDK: uniform in [base/2, base/2 + min(ceiling, base * 2^attempt)]
 * milliseconds. `random` is injectable for tests.
 */
export function backoff(attempt: number, baseMs: number, ceilingMs: number, random: () => number = Math.random): number {
  const span = attempt < 30 ? Math.min(ceilingMs, baseMs * 2 ** attempt) : ceilingMs;
  return baseMs / 2 + Math.floor(random() * (span + 1));
}
