// Browser storage, keyed per experiment and session: credentials, progress, the unsent queue.

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
  // A tab keeps its own session in sessionStorage (it survives a reload, and another person's
  // tab in the same browser cannot overwrite it); localStorage keeps each participant's apart,
  // for the consent page's "continue" and a new tab of the same person.
  credentials(participant = null) {
    try {
      const own = safeParse(sessionStorage.getItem(`${this.prefix}:credentials`), null);
      if (own) return own;
    } catch (_) { /* storage blocked */ }
    return participant === null ? null : this.saved(participant);
  }
  static savedKey(participant) { return `credentials:${participant || ''}`; }
  saved(participant) { return this.get(Store.savedKey(participant)); }
  setCredentials(creds) {
    try { sessionStorage.setItem(`${this.prefix}:credentials`, JSON.stringify(creds)); } catch (_) { /* storage blocked */ }
    this.set(Store.savedKey(creds.participant), creds);
  }
  forgetCredentials(creds) {
    try { sessionStorage.removeItem(`${this.prefix}:credentials`); } catch (_) { /* storage blocked */ }
    if (creds) this.remove(Store.savedKey(creds.participant));
  }
  progress(sessionId) { return this.get(`${sessionId}:progress`, {}); }
  setProgress(sessionId, progress) { this.set(`${sessionId}:progress`, progress); }
}
