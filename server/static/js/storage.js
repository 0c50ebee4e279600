// localStorage, keyed per experiment and session: credentials, progress, the unsent queue.

const safeParse = (text, fallback) => {
  try { return text ? JSON.parse(text) : fallback; } catch (_) { return fallback; }
};

export class Store {
  constructor(experiment) {
    this.prefix = `interpsy:${experiment}`;
  }
  get(name, fallback = null) {
    try { return safeParse(localStorage.getItem(`${this.prefix}:${name}`), fallback); } catch (_) { return fallback; }
  }
  set(name, value) {
    try { localStorage.setItem(`${this.prefix}:${name}`, JSON.stringify(value)); return true; } catch (_) { return false; }
  }
  remove(name) {
    try { localStorage.removeItem(`${this.prefix}:${name}`); } catch (_) { /* storage blocked */ }
  }
  credentials() { return this.get('credentials'); }
  setCredentials(creds) { this.set('credentials', creds); }
  progress(sessionId) { return this.get(`${sessionId}:progress`, {}); }
  setProgress(sessionId, progress) { this.set(`${sessionId}:progress`, progress); }
}
