// The JSON API client: every call carries the session's bearer token; errors keep the status.

export class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status; // 0: network error or timeout
    this.body = body || {};
  }
  get retryable() {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

export class Api {
  constructor(base, sessionId, token, timeoutMs = 15000) {
    this.base = `${base}/sessions/${sessionId}`;
    this.token = token;
    this.timeoutMs = timeoutMs;
  }

  async call(method, path, body) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.timeoutMs);
    let response;
    try {
      response = await fetch(this.base + path, {
        method,
        headers: { Authorization: `Bearer ${this.token}`, 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller.signal,
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (error) {
      throw new ApiError(`network error: ${error.message || error}`, 0);
    } finally {
      clearTimeout(timer);
    }
    let data = {};
    try { data = await response.json(); } catch (_) { /* an empty or HTML body */ }
    if (!response.ok) throw new ApiError(data.error || `HTTP ${response.status}`, response.status, data);
    return data;
  }

  state() { return this.call('GET', ''); }
  response(payload) { return this.call('POST', '/responses', payload); }
  complete(feedback) { return this.call('POST', '/complete', { feedback: feedback || null }); }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Retry `fn` while it fails with a retryable ApiError, with capped exponential backoff. */
export async function withRetry(fn, { tries = Infinity, baseMs = 500, maxMs = 15000, onWait } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await fn();
    } catch (error) {
      if (!(error instanceof ApiError) || !error.retryable || attempt + 1 >= tries) throw error;
      const wait = Math.min(maxMs, baseMs * 2 ** attempt) * (0.75 + Math.random() * 0.5);
      if (onWait) onWait(error, wait);
      await sleep(wait);
    }
  }
}
