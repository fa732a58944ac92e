// The REST API, on the console's own origin (the console is served at <api>/v1/console/).
// The session's tokens live in this object only — in memory, never in localStorage,
// sessionStorage or a cookie: closing or reloading the page signs out.

import {signedHeaders} from "./sigv4.js";

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `The API answered ${status}.`);
    this.status = status;
    this.code = error.code || "http_error";
    this.requestId = error.request_id || null;
    this.details = error.details || [];
  }
}

const MAX_THROTTLE_WAIT_SECONDS = 5;

export class Api {
  /** `base`: the API's base URL with the stage, ending in "/" (e.g. https://…/v1/). */
  constructor(base) {
    this.base = base;
    this.session = null; // {accessToken, refreshToken, workspaceId}
    this.operator = null; // {accessKeyId, secretAccessKey, sessionToken, region}
    this.onSignedOut = () => {};
    this.refreshing = null;
  }

  url(path, query) {
    const url = new URL(path.replace(/^\//, ""), this.base);
    for (const [name, value] of Object.entries(query || {})) {
      if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, String(value));
    }
    return url;
  }

  /** The workspace's path: ws("runs", rid) → "workspaces/<wid>/runs/<rid>" (each segment encoded). */
  ws(...segments) {
    return ["workspaces", this.session.workspaceId, ...segments].map(encodeURIComponent).join("/");
  }

  async login(email, password) {
    const body = await this.request("POST", "auth/login", {body: {email, password}, anonymous: true});
    this.session = {accessToken: body.access_token, refreshToken: body.refresh_token,
                    workspaceId: body.workspace_id};
    return body;
  }

  async logout() {
    try {
      if (this.session) await this.request("POST", "auth/logout", {retryUnauthorized: false});
    } finally {
      this.session = null;
    }
  }

  /** The page is going away (closed, reloaded, left): end the session on the server as well, so its refresh
   *  token dies with the page that held it. Best effort: a keepalive request outlives the page. */
  endOnLeave() {
    const session = this.session;
    this.session = null;
    if (!session) return;
    fetch(this.url("auth/logout"), {method: "POST", keepalive: true, cache: "no-store", credentials: "omit",
                                    headers: {Authorization: `Bearer ${session.accessToken}`}}).catch(() => {});
  }

  get(path, query) {
    return this.request("GET", path, {query});
  }

  post(path, body, headers) {
    return this.request("POST", path, {body: body ?? {}, headers});
  }

  /** A request with the session's token; a 401 refreshes the session once, a short throttle is waited out. */
  async request(method, path, {query, body, headers = {}, anonymous = false, retryUnauthorized = true,
                               throttleRetries = 2} = {}) {
    const init = {method, headers: {Accept: "application/json", ...headers}, cache: "no-store",
                  credentials: "omit"};
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (!anonymous && this.session) init.headers.Authorization = `Bearer ${this.session.accessToken}`;
    const response = await fetch(this.url(path, query), init);
    if (response.status === 401 && !anonymous && retryUnauthorized && this.session) {
      if (await this.refresh()) {
        return this.request(method, path, {query, body, headers, retryUnauthorized: false, throttleRetries});
      }
      this.session = null;
      this.onSignedOut("Your session ended. Please sign in again.");
    }
    if (response.status === 429 && throttleRetries > 0) {
      const wait = Number(response.headers.get("Retry-After") || "1");
      if (wait <= MAX_THROTTLE_WAIT_SECONDS) {
        await new Promise((resolve) => setTimeout(resolve, wait * 1000));
        return this.request(method, path, {query, body, headers, anonymous, retryUnauthorized,
                                           throttleRetries: throttleRetries - 1});
      }
    }
    return readBody(response);
  }

  /** A new pair of tokens from the refresh token (one refresh at a time); false if the session is over. */
  refresh() {
    if (!this.refreshing) {
      const session = this.session;
      this.refreshing = (async () => {
        try {
          const body = await this.request("POST", "auth/refresh", {body: {refresh_token: session.refreshToken},
                                                                   anonymous: true, throttleRetries: 1});
          if (this.session === session) {
            this.session = {...session, accessToken: body.access_token, refreshToken: body.refresh_token};
          }
          return true;
        } catch {
          return false;
        } finally {
          this.refreshing = null;
        }
      })();
    }
    return this.refreshing;
  }

  /** An operator request (/v1/admin/…), signed with SigV4 by the credentials the operator pasted. */
  async admin(method, path, query) {
    const url = this.url(path);
    // The canonical query is the query as sent: names sorted, each part RFC 3986-encoded.
    const pairs = Object.entries(query || {}).filter(([, v]) => v !== null && v !== undefined && v !== "")
      .map(([k, v]) => [rfc3986(k), rfc3986(String(v))]).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    url.search = pairs.map(([k, v]) => `${k}=${v}`).join("&");
    const headers = await signedHeaders({method, url, body: "", credentials: this.operator,
                                         region: this.operator.region});
    const response = await fetch(url, {method, headers: {Accept: "application/json", ...headers},
                                       cache: "no-store", credentials: "omit"});
    return readBody(response);
  }
}

export function rfc3986(text) {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

async function readBody(response) {
  const type = response.headers.get("Content-Type") || "";
  const body = type.includes("json") ? await response.json().catch(() => null) : null;
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}
