// The JSON API client of the portal and the dashboard: same origin, cookies, the CSRF
// header on every state change, and the service's error envelope turned into ApiError.

export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {{code?: string, message?: string, requestId?: string, details?: Array<{field: string, message: string}>}} body
   * @param {number | null} retryAfterSeconds
   */
  constructor(status, body, retryAfterSeconds) {
    super(body.message ?? `Request failed (${status})`);
    this.name = 'ApiError';
    this.status = status;
    this.code = body.code ?? 'UNKNOWN';
    this.requestId = body.requestId;
    this.details = body.details ?? [];
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export class NetworkError extends Error {
  /** @param {unknown} cause */
  constructor(cause) {
    super('The service could not be reached');
    this.name = 'NetworkError';
    this.cause = cause;
  }
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The value of a readable cookie (the people's csrf_token). @param {string} name */
export function readCookie(name) {
  for (const part of document.cookie.split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return decodeURIComponent(rest.join('='));
  }
  return undefined;
}

/**
 * @typedef {object} ClientOptions
 * @property {() => string | undefined} csrfToken the token for X-CSRF-Token on unsafe requests
 * @property {() => Promise<boolean>} [refresh] called once on a 401 to renew the session; true = retry
 * @property {() => void} [onSignedOut] called when the session cannot be renewed
 */

/**
 * @param {ClientOptions} options
 */
export function createClient(options) {
  /**
   * @param {string} method @param {string} path
   * @param {{body?: unknown, retried?: boolean, raw?: boolean, headers?: Record<string, string>}} [request]
   * @returns {Promise<any>}
   */
  async function call(method, path, request = {}) {
    /** @type {Record<string, string>} */
    const headers = { Accept: 'application/json', ...(request.headers ?? {}) };
    if (request.body !== undefined) headers['Content-Type'] = 'application/json';
    const csrf = options.csrfToken();
    if (UNSAFE.has(method) && csrf) headers['X-CSRF-Token'] = csrf;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        credentials: 'same-origin',
        cache: 'no-store',
        ...(request.body !== undefined ? { body: JSON.stringify(request.body) } : {}),
      });
    } catch (error) {
      throw new NetworkError(error);
    }
    if (response.status === 401 && !request.retried && options.refresh) {
      if (await options.refresh()) return call(method, path, { ...request, retried: true });
      options.onSignedOut?.();
    }
    if (!response.ok) {
      let body = {};
      try {
        const parsed = await response.json();
        body = parsed && typeof parsed === 'object' && parsed.error ? parsed.error : {};
      } catch {
        body = { message: `The service answered ${response.status} ${response.statusText}` };
      }
      const retryAfter = Number(response.headers.get('Retry-After'));
      throw new ApiError(response.status, body, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null);
    }
    if (request.raw) return response;
    if (response.status === 204 || response.status === 202) {
      const text = await response.text();
      return text ? JSON.parse(text) : null;
    }
    return response.json();
  }
  return {
    /** @param {string} path */
    get: (path) => call('GET', path),
    /** @param {string} path */
    getRaw: (path) => call('GET', path, { raw: true }),
    /** @param {string} path @param {unknown} [body] @param {{headers?: Record<string, string>}} [extra] */
    post: (path, body, extra = {}) => call('POST', path, { body: body ?? {}, ...(extra.headers ? { headers: extra.headers } : {}) }),
    /** @param {string} path @param {unknown} body */
    patch: (path, body) => call('PATCH', path, { body }),
    /** @param {string} path */
    delete: (path) => call('DELETE', path),
  };
}
