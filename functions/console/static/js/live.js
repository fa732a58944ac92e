// Live status over the WebSocket API (docs/api.md, "Live status").
//
// A browser cannot set headers on a WebSocket, so each connect uses a one-time ticket
// (POST /v1/ws-tickets, 60 s) in the URL — never the token. Delivery is at least once:
// each run's events are shown in seq order, each once (a seq already shown is dropped, one
// that comes early is held until the ones before it arrive). After a drop the connection is
// made again with a new ticket and every subscription resumes from the last seq shown.

const PING_EVERY_MS = 5 * 60 * 1000; // API Gateway closes a connection idle for 10 minutes
const MAX_BACKOFF_MS = 30 * 1000;

export class Live {
  constructor(api, url, {onState = () => {}} = {}) {
    this.api = api;
    this.url = url;
    this.onState = onState; // "connecting" | "live" | "reconnecting" | "closed" | "unavailable"
    this.socket = null;
    this.opening = null;
    this.runs = new Map(); // run id → {next, held, onEvent, onError}
    this.sessions = new Map(); // session id → the same: a session's one cursor (its seq, every run of it)
    this.workspaceListeners = new Set();
    this.workspaceSubscribed = false; // the workspace subscription was sent on this connection (watchWorkspace)
    this.stopped = false;
    this.backoff = 1000;
    this.pinger = null;
    this.retryTimer = null;
    this.throttledRetry = null; // a resubscribe after API Gateway throttled a message (receive)
  }

  get available() {
    return Boolean(this.url);
  }

  /** Follow a run's events from seq `after + 1`: onEvent(event) once per seq, in order. */
  watchRun(runId, onEvent, {after = 0, onError = () => {}} = {}) {
    const watch = {next: after + 1, held: new Map(), onEvent, onError};
    this.runs.set(runId, watch);
    this.send({action: "subscribe", run_id: runId, after});
    return () => {
      if (this.runs.get(runId) === watch) {
        this.runs.delete(runId);
        this.send({action: "unsubscribe", run_id: runId}, false);
      }
    };
  }

  /** Follow a session's events (every run of it and their children, under the session's seq) from
   *  `after + 1`: onEvent(event) once per session seq, in order. */
  watchSession(sessionId, onEvent, {after = 0, onError = () => {}} = {}) {
    const watch = {next: after + 1, held: new Map(), onEvent, onError};
    this.sessions.set(sessionId, watch);
    this.send({action: "subscribe", session_id: sessionId, after});
    return () => {
      if (this.sessions.get(sessionId) === watch) {
        this.sessions.delete(sessionId);
        this.send({action: "unsubscribe", session_id: sessionId}, false);
      }
    };
  }

  /** Every run's status changes (run.* events), approvals (approval.*) and usage alerts of the workspace. */
  watchWorkspace(listener) {
    this.workspaceListeners.add(listener);
    if (!this.workspaceSubscribed) {
      this.workspaceSubscribed = true;
      this.send({action: "subscribe", workspace: true});
    }
    // Leaving a view never unsubscribes: the WebSocket API does not keep the order in which one
    // connection's messages are handled, so an unsubscribe followed by the next view's subscribe could
    // end unsubscribed (seen on a loaded machine, where the next view's first read is slow). Frames no
    // view listens to are dropped here; the subscription ends with the connection.
    return () => {
      this.workspaceListeners.delete(listener);
    };
  }

  /** Read a view's data again (`reload()`) on the workspace's frames that `when(frame)` accepts, at most
   *  once every `everyMs`: a burst of changes makes one read. A read that fails is left to the next change.
   *  Returns what ends it (for `app.onLeave`): no further frame is listened to and a pending read is dropped. */
  reloadOnWorkspace(reload, {everyMs = 500, when = () => true} = {}) {
    let pending = null;
    const stop = this.watchWorkspace((frame) => {
      if (!when(frame) || pending) return;
      pending = setTimeout(async () => {
        pending = null;
        try {
          await reload();
        } catch {
          // the next change tries again
        }
      }, everyMs);
    });
    return () => {
      stop();
      clearTimeout(pending);
    };
  }

  close() {
    this.stopped = true;
    clearInterval(this.pinger);
    clearTimeout(this.retryTimer);
    clearTimeout(this.throttledRetry);
    this.runs.clear();
    this.sessions.clear();
    this.workspaceListeners.clear();
    this.workspaceSubscribed = false;
    if (this.socket) this.socket.close(1000, "signed out");
    this.socket = null;
    this.onState("closed");
  }

  /** Send a frame now if the connection is open; otherwise open it (subscriptions are sent on open). */
  send(frame, connect = true) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(frame));
    } else if (connect) {
      this.open();
    }
  }

  async open() {
    if (!this.available) {
      this.onState("unavailable");
      return;
    }
    if (this.opening || this.stopped) return;
    this.opening = (async () => {
      try {
        this.onState(this.socket ? "reconnecting" : "connecting");
        const {ticket} = await this.api.post("ws-tickets");
        const socket = new WebSocket(`${this.url}?ticket=${encodeURIComponent(ticket)}`);
        await new Promise((resolve, reject) => {
          socket.addEventListener("open", resolve, {once: true});
          socket.addEventListener("error", () => reject(new Error("The live connection was refused.")), {once: true});
        });
        this.socket = socket;
        this.backoff = 1000;
        socket.addEventListener("message", (message) => this.receive(message.data));
        socket.addEventListener("close", () => this.dropped(socket));
        clearInterval(this.pinger);
        this.pinger = setInterval(() => this.send({action: "ping"}, false), PING_EVERY_MS);
        this.onState("live");
        this.resubscribe();
      } catch (error) {
        this.retryLater();
      } finally {
        this.opening = null;
      }
    })();
  }

  resubscribe() {
    for (const [runId, watch] of this.runs) {
      this.send({action: "subscribe", run_id: runId, after: watch.next - 1}, false);
    }
    for (const [sessionId, watch] of this.sessions) {
      this.send({action: "subscribe", session_id: sessionId, after: watch.next - 1}, false);
    }
    this.workspaceSubscribed = this.workspaceListeners.size > 0;
    if (this.workspaceSubscribed) this.send({action: "subscribe", workspace: true}, false);
  }

  dropped(socket) {
    if (socket !== this.socket) return;
    clearInterval(this.pinger);
    if (this.stopped) return;
    this.retryLater();
  }

  retryLater() {
    if (this.stopped) return;
    this.onState("reconnecting");
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.open(), this.backoff);
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
  }

  receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.type === "run.event") {
      const watch = this.runs.get(frame.run_id);
      if (watch) {
        if (frame.truncated) this.fetchWhole(frame.run_id, frame.seq, watch);
        else this.deliver(watch, frame.seq, frame.event);
      }
      if (/^(run|approval)\./.test(String(frame.event && frame.event.type))) this.tellWorkspace(frame);
    } else if (frame.type === "session.event") {
      const watch = this.sessions.get(frame.session_id);
      if (watch) {
        if (frame.truncated) this.fetchWholeSessionEvent(frame.session_id, frame.seq, watch);
        else this.deliver(watch, frame.seq, frame.event);
      }
    } else if (frame.type === "subscribed" && frame.already_subscribed && (frame.run_id || frame.session_id)) {
      // The connection already followed it (a subscribe sent again, or handled before this view's earlier
      // unsubscribe): nothing is replayed, so what this view has not shown yet is read over REST.
      const [kind, id] = frame.run_id ? ["runs", frame.run_id] : ["sessions", frame.session_id];
      const watch = (frame.run_id ? this.runs : this.sessions).get(id);
      if (watch) this.catchUp(kind, id, watch);
    } else if (frame.type === "subscribed" && frame.session_id && frame.more) {
      this.send({action: "subscribe", session_id: frame.session_id, after: frame.through}, false);
    } else if (frame.type === "usage.alert" || (frame.type === "subscribed" && frame.workspace)) {
      // (subscribed: from now on nothing of the workspace is missed — a view reads its list again, so that
      // what happened between its first read and the subscription shows too)
      this.tellWorkspace(frame);
    } else if (frame.type === "subscribed" && frame.run_id && frame.more) {
      this.send({action: "subscribe", run_id: frame.run_id, after: frame.through}, false);
    } else if (frame.message === "Too Many Requests") {
      // API Gateway throttled a message of ours (the stage's route limit): it reached no function, so a
      // subscribe it carried never happened. Send every subscription again, a little later.
      clearTimeout(this.throttledRetry);
      this.throttledRetry = setTimeout(() => this.resubscribe(), 500 + Math.floor(Math.random() * 1000));
    } else if (frame.type === "error" && frame.code === "rate_limited") {
      // too many subscribes on this connection at once (a long replay's pages): each run again, later,
      // from the seq it shows next
      setTimeout(() => {
        for (const [runId, watch] of this.runs) this.send({action: "subscribe", run_id: runId, after: watch.next - 1}, false);
        for (const [sessionId, watch] of this.sessions) {
          this.send({action: "subscribe", session_id: sessionId, after: watch.next - 1}, false);
        }
        if (this.workspaceListeners.size) this.send({action: "subscribe", workspace: true}, false);
      }, 1000 * Math.min(30, frame.retry_after || 1));
    } else if (frame.type === "error") {
      for (const watch of this.runs.values()) watch.onError(frame);
      for (const watch of this.sessions.values()) watch.onError(frame);
    }
  }

  tellWorkspace(frame) {
    for (const listener of this.workspaceListeners) listener(frame);
  }

  deliver(watch, seq, event) {
    if (seq < watch.next) return; // shown already: a duplicate from the replay seam or a retry
    watch.held.set(seq, event);
    while (watch.held.has(watch.next)) {
      const next = watch.held.get(watch.next);
      watch.held.delete(watch.next);
      watch.next += 1;
      watch.onEvent(next);
    }
  }

  /** The stored events of a run (or a session's cursor) this watch has not shown, read over REST. */
  async catchUp(kind, id, watch) {
    try {
      let after = watch.next - 1;
      while (after !== null) {
        const page = await this.api.get(this.api.ws(kind, id, "events"), {after, limit: 500});
        for (const event of page.items) this.deliver(watch, event.seq, event);
        after = page.next_after;
      }
    } catch (error) {
      watch.onError({code: error.code, message: error.message});
    }
  }

  /** A session event too large for a frame: read it whole from the session's cursor over REST. */
  async fetchWholeSessionEvent(sessionId, seq, watch) {
    try {
      const page = await this.api.get(this.api.ws("sessions", sessionId, "events"), {after: seq - 1, limit: 1});
      const event = page.items.find((item) => item.seq === seq);
      if (event) this.deliver(watch, seq, event);
    } catch (error) {
      watch.onError({code: error.code, message: error.message});
    }
  }

  /** An event too large for a frame comes without its data: read it whole over REST. */
  async fetchWhole(runId, seq, watch) {
    try {
      const page = await this.api.get(this.api.ws("runs", runId, "events"), {after: seq - 1, limit: 1});
      const event = page.items.find((item) => item.seq === seq);
      if (event) this.deliver(watch, seq, event);
    } catch (error) {
      watch.onError({code: error.code, message: error.message});
    }
  }
}
