// Queues kept in localStorage until the server confirms each item, sent in order and retried
// with backoff while offline or on server errors: the answers (SaveQueue) and the events and
// instruction times (Outbox).
import { ApiError, sleep } from './api.js';

class StoredQueue {
  constructor(store, key, { onChange = () => {} } = {}) {
    this.store = store;
    this.key = key;
    this.items = store.get(this.key, []);
    this.onChange = onChange;
    this.failures = 0;
    this.running = false;
    this.waiters = [];
    this.wake = null;
    this.lastError = null;
    window.addEventListener('online', () => this.kick(true));
  }

  get length() { return this.items.length; }

  /** Called with each item and the server's answer (null when the item was dropped). */
  settled(_item, _result) {}

  persist() {
    if (!this.store.set(this.key, this.items)) this.lastError = 'browser storage is full or blocked';
    this.onChange(this);
  }

  add(item) {
    this.items.push(item);
    this.persist();
    this.kick(true);
  }

  kick(resetBackoff = false) {
    if (resetBackoff) this.failures = 0;
    if (this.wake) this.wake();
    if (!this.running) this.run();
  }

  /** Resolves when every queued item is confirmed by the server. */
  drained() {
    if (!this.items.length) return Promise.resolve();
    return new Promise((resolve) => { this.waiters.push(resolve); this.kick(true); });
  }

  async pause(ms) {
    await Promise.race([sleep(ms), new Promise((resolve) => { this.wake = resolve; })]);
    this.wake = null;
  }

  /** Send one item; resolves with the server's answer. */
  send(_item) { throw new Error('send() is defined by each queue'); }

  /** What to do after a non-retryable error: 'drop' the item and go on, or 'stop'. */
  refused(_error, _item) { return 'drop'; }

  async run() {
    this.running = true;
    while (this.items.length) {
      const item = this.items[0];
      try {
        this.lastResult = await this.send(item);
        this.settled(item, this.lastResult);
        this.items.shift();
        this.failures = 0;
        this.lastError = null;
        this.persist();
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        if (error.retryable) {
          this.failures += 1;
          this.lastError = error.status === 0 ? 'no connection to the server' : error.message;
          this.onChange(this);
          const wait = Math.min(15000, 500 * 2 ** Math.min(this.failures - 1, 5));
          await this.pause(wait * (0.75 + Math.random() * 0.5));
          continue;
        }
        if (this.refused(error, item) === 'stop') {
          this.running = false;
          return;
        }
        this.settled(item, null);
        this.items.shift();
        this.persist();
      }
    }
    this.running = false;
    const waiters = this.waiters;
    this.waiters = [];
    waiters.forEach((resolve) => resolve());
  }
}

export class SaveQueue extends StoredQueue {
  constructor(api, store, sessionId, { onChange = () => {}, onFatal = () => {}, onDrop = () => {} } = {}) {
    super(store, `${sessionId}:queue`, { onChange });
    this.api = api;
    this.onFatal = onFatal;
    this.onDrop = onDrop;
    this.replies = new Map(); // trial_index -> { promise, resolve }
  }

  get lastIndex() { return this.items.length ? this.items[this.items.length - 1].trial_index : -1; }

  /** The server's reply to the answer at `index` (its scoring), or null if it was dropped. */
  reply(index) {
    if (!this.replies.has(index)) {
      let resolve;
      const promise = new Promise((r) => { resolve = r; });
      this.replies.set(index, { promise, resolve });
    }
    return this.replies.get(index).promise;
  }

  settled(item, result) {
    this.reply(item.trial_index);
    this.replies.get(item.trial_index).resolve(result);
  }

  /** Queue an answer; resolves with the server's reply (correct, answer_key) or null. */
  push(payload) {
    if (!this.items.some((item) => item.trial_index === payload.trial_index)) this.add(payload);
    return this.reply(payload.trial_index);
  }

  send(item) { return this.api.response(item); }

  refused(error, item) {
    // 409 without an expected index: already stored with another answer (e.g. from another
    // tab), the stored one wins; 400, or an index the server is already past: drop it too.
    if ((error.status === 409 && (error.body.expected_trial_index === undefined
        || error.body.expected_trial_index > item.trial_index)) || error.status === 400) {
      this.onDrop(item, error);
      return 'drop';
    }
    this.onFatal(error, item);
    return 'stop';
  }
}

/** A key per item, so that the server stores a retried event once. */
function itemKey() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export class Outbox extends StoredQueue {
  constructor(api, store, sessionId, { limit = 500 } = {}) {
    super(store, `${sessionId}:outbox`);
    this.api = api;
    this.limit = limit;
    if (this.items.length) this.kick(true);
  }

  /** Queue a POST to the session's `path` (e.g. '/events'); a 4xx answer drops it. */
  post(path, body) {
    if (this.items.length >= this.limit) this.items.shift(); // keep storage bounded
    this.add({ path, body: { ...body, key: itemKey() } });
  }

  send(item) { return this.api.call('POST', item.path, item.body); }
}
