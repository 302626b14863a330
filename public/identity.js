// Who the page reads Redis as, under every --auth mode (GET /api/identity):
//   none            nothing to show; the panel stays hidden
//   jwt             the token's subject and a countdown to its exp; without
//                   a valid token cookie, a token field that sets it
//   spring-session  whose session it is and a countdown to its expiry; no
//                   token field (the app's own SESSION cookie is the key)
// A stream cannot send headers from a page, so under jwt the token travels as the
// cookie the server names in its 401 ("cookie"), set here by the page.
// Everything the server says is shown with textContent only.

// A JWT is base64url parts joined by dots; anything else could end the
// cookie's value (";") or smuggle attributes, so it is refused here.
const TOKEN = /^[A-Za-z0-9_\-.~+/=]{1,8192}$/;
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$/;
const DEFAULT_COOKIE = "keyflux_token";

const REASONS = {
  "token-expired": "Your token expired",
  "session-ended": "Your session ended",
  "session-expired": "Your session expired",
};

export class IdentityPanel {
  /**
   * els: who, whoText, whoExpires, signOut (header); signin (card), form,
   *      input, error, notice, noSession
   * onSignedIn()  the identity is valid (again): (re)open the streams
   * onSignedOut() the cookie was cleared: close the streams
   * onMissing()   the server wants an identity the page does not have
   */
  constructor(els, { onSignedIn, onSignedOut, onMissing }) {
    Object.assign(this, els, { onSignedIn, onSignedOut, onMissing });
    this.mode = "";
    this.cookie = DEFAULT_COOKIE;
    this.identity = null;
    this.checking = null;
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.useToken(this.input.value.trim());
    });
    this.input.addEventListener("input", () => this.showError(""));
    this.signOut.addEventListener("click", () => this.clear());
  }

  /**
   * check asks the server who the page is. It resolves to true when the
   * page may open streams (auth none, or a valid identity). Concurrent
   * calls share one request.
   */
  check() {
    this.checking ??= this.fetchIdentity().finally(() => (this.checking = null));
    return this.checking;
  }

  async fetchIdentity() {
    let resp, body;
    try {
      resp = await fetch("/api/identity", { cache: "no-store", credentials: "same-origin" });
      body = await resp.json().catch(() => ({}));
    } catch {
      // Server unreachable: open the streams anyway; they retry on their own
      // and a 401 among them comes back here through refused().
      return true;
    }
    if (resp.status === 401) {
      this.signedOut(body);
      return false;
    }
    if (resp.status === 404) {
      this.signedIn({ auth: "none" }); // a server from before --auth
      return true;
    }
    if (!resp.ok) {
      // 503: the identity could not be checked now (Redis unreachable). The
      // streams say so too and retry; nothing is gained by holding them.
      this.showNotice(typeof body?.error === "string" ? body.error : `Identity check failed: HTTP ${resp.status}`);
      return true;
    }
    this.signedIn(body ?? {});
    return true;
  }

  signedIn(id) {
    this.identity = id;
    this.mode = typeof id.auth === "string" ? id.auth : "none";
    if (typeof id.cookie === "string" && COOKIE_NAME.test(id.cookie)) this.cookie = id.cookie;
    document.body.dataset.auth = this.mode === "none" ? "none" : "signed-in";
    this.signin.hidden = true;
    if (this.mode === "none") {
      this.who.hidden = true;
      return;
    }
    this.who.hidden = false;
    this.who.dataset.mode = this.mode;
    const subject = typeof id.subject === "string" && id.subject ? id.subject : "(no subject)";
    this.whoText.textContent = this.mode === "spring-session" ? `Session of ${subject}` : `Signed in as ${subject}`;
    this.whoText.title = subject; // the whole of a long subject
    // A Spring session's own expiry moves on with use; a token's is fixed.
    this.until = this.mode === "spring-session" ? (id.session_expires ?? id.expires) : id.expires;
    this.whoExpires.dataset.expires = Number.isFinite(this.until) ? String(this.until) : "";
    this.signOut.hidden = this.mode !== "jwt";
    this.tick();
    clearInterval(this.timer);
    if (Number.isFinite(this.until)) this.timer = setInterval(() => this.tick(), 1000);
  }

  signedOut(body) {
    this.identity = null;
    clearInterval(this.timer);
    this.mode = typeof body?.auth === "string" ? body.auth : "jwt";
    if (typeof body?.cookie === "string" && COOKIE_NAME.test(body.cookie)) this.cookie = body.cookie;
    document.body.dataset.auth = "signed-out";
    this.who.hidden = true;
    this.signin.hidden = false;
    this.signin.dataset.mode = this.mode;
    const jwt = this.mode === "jwt";
    this.form.hidden = !jwt;
    this.noSession.hidden = jwt;
    if (jwt && this.notice.hidden) this.input.focus({ preventScroll: true });
    this.onMissing?.();
  }

  tick() {
    const until = this.until;
    if (!Number.isFinite(until)) {
      this.whoExpires.textContent = "does not expire";
      return;
    }
    const left = until - Date.now();
    const at = new Date(until).toLocaleTimeString();
    this.whoExpires.textContent = left > 0 ? `expires in ${duration(left)} (${at})` : `expired at ${at}`;
    this.whoExpires.dataset.due = left < 60_000 ? "soon" : "";
  }

  async useToken(token) {
    if (!TOKEN.test(token)) {
      this.showError(token ? "That does not look like a token (a JWT is letters, digits, '-', '_' and dots)." : "Paste a token first.");
      return;
    }
    setCookie(this.cookie, token, 0);
    this.input.value = "";
    this.showError("");
    await this.checking; // one that started before the cookie was set
    if (await this.check()) {
      this.hideNotice();
      this.onSignedIn?.();
    } else if (!this.signin.hidden) {
      this.showError("The server refused this token.");
    }
  }

  /** clear deletes the token cookie and closes the streams. */
  async clear() {
    setCookie(this.cookie, "", -1);
    this.onSignedOut?.();
    await this.checking;
    if (await this.check()) {
      // Still valid: the cookie was set by the server (HttpOnly) or the
      // token comes from elsewhere; the page cannot take it back.
      this.showNotice("Still signed in: this token was not set by the dashboard and cannot be cleared here.");
      this.onSignedIn?.();
    }
  }

  /** expired handles an auth-expired event of a stream. */
  expired(reason) {
    const what = REASONS[reason] ?? "Your identity ended";
    const next = this.mode === "spring-session" ? "sign in to the application again, then reload." : "paste a new token to continue.";
    this.showNotice(`${what}: ${next}`);
    document.body.dataset.authExpired = String(reason ?? "");
    this.check();
  }

  /** refused is a stream refused with 401: find out why and ask again. */
  refused() {
    return this.check();
  }

  showNotice(text) {
    this.notice.textContent = text;
    this.notice.hidden = false;
  }

  hideNotice() {
    this.notice.hidden = true;
    this.notice.textContent = "";
    delete document.body.dataset.authExpired;
  }

  showError(text) {
    this.error.textContent = text;
    if (text) this.input.setAttribute("aria-invalid", "true");
    else this.input.removeAttribute("aria-invalid");
  }
}

// setCookie sets (or with maxAge < 0 deletes) the token cookie for the
// whole site. SameSite=Strict keeps other sites' pages from using it;
// Secure whenever the page itself came over https.
function setCookie(name, value, maxAge) {
  let c = `${name}=${value}; path=/; SameSite=Strict`;
  if (maxAge < 0) c += "; Max-Age=0";
  if (location.protocol === "https:") c += "; Secure";
  document.cookie = c;
}

function duration(ms) {
  const s = Math.ceil(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d`;
}
