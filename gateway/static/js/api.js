// The one way the app talks to the API: identity headers, problem details, and the retry
// rules (429 waits out Retry-After; 503 and network errors retry when that is safe).
import { currentUser, forgetUser } from './store.js';
import { sleep } from './dom.js';

/** A problem response (RFC 9457); `detail` is shown to people as it is. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `The server answered ${status}.`);
    this.status = status;
    this.problem = problem || {};
  }
}

/** No usable access token: the app shows the sign-in form and then resumes. */
export class AuthRequired extends Error {
  constructor() {
    super('Please sign in to continue.');
  }
}

/** The network failed and the request could not safely be retried by itself. */
export class NetworkError extends Error {
  constructor() {
    super('The connection to Boxoffice failed. Check your connection and try again.');
  }
}

// A message shown while a request waits to be retried (set by main.js).
let onWait = () => {};
export function setWaitNotice(fn) {
  onWait = fn;
}

const MAX_ATTEMPTS = 6;

function retryAfterMs(response, fallbackMs) {
  const value = Number(response.headers.get('retry-after'));
  return Number.isFinite(value) && value > 0 ? value * 1000 : fallbackMs;
}

/**
 * fetch() a JSON endpoint. Options: method, body (JSON), auth (send the access token; a
 * missing one throws AuthRequired), admission (X-Admission-Token), idempotencyKey, signal,
 * retry (false: no automatic retries, for polling loops that have their own).
 * Returns the parsed body (null for 204).
 */
export async function api(path, options = {}) {
  const { method = 'GET', body, auth = false, admission, idempotencyKey, signal } = options;
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (auth) {
    const user = currentUser();
    if (!user) throw new AuthRequired();
    headers.authorization = `Bearer ${user.access_token}`;
  }
  if (admission) headers['x-admission-token'] = admission;
  if (idempotencyKey) headers['idempotency-key'] = idempotencyKey;
  // Safe to send again after a network error: nothing changes twice.
  const repeatable = method === 'GET' || method === 'DELETE' || Boolean(idempotencyKey);
  const retry = options.retry !== false;
  let backoffMs = 500;
  for (let attempt = 1; ; attempt++) {
    let response;
    try {
      response = await fetch(path, {
        method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      if (signal?.aborted) throw err;
      if (!retry || !repeatable || attempt >= MAX_ATTEMPTS) throw new NetworkError();
      onWait(`Connection lost; retrying in ${Math.round(backoffMs / 1000) || 1} s…`);
      await sleep(backoffMs, signal);
      backoffMs = Math.min(backoffMs * 2, 8000);
      continue;
    }
    // 429 and 503 mean the request was not carried out: waiting and sending it again is
    // safe for every method. 502/504 may hide a request that went through.
    const waitable = response.status === 429 || response.status === 503
      || (repeatable && (response.status === 502 || response.status === 504));
    if (waitable && retry && attempt < MAX_ATTEMPTS) {
      const waitMs = response.status === 429
        ? retryAfterMs(response, 1000)
        : retryAfterMs(response, backoffMs);
      onWait(response.status === 429
        ? `Lots of people are booking right now; retrying in ${Math.ceil(waitMs / 1000)} s…`
        : `Boxoffice is busy; retrying in ${Math.ceil(waitMs / 1000)} s…`);
      await sleep(waitMs, signal);
      backoffMs = Math.min(backoffMs * 2, 8000);
      continue;
    }
    onWait('');
    if (response.status === 401 && auth) {
      forgetUser();
      throw new AuthRequired();
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }
}

/** What to tell people about an error, in plain words. */
export function problemText(err) {
  if (err instanceof ApiError || err instanceof NetworkError || err instanceof AuthRequired) {
    return err.message;
  }
  return 'Something went wrong. Please try again.';
}
