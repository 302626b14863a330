package main

import (
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/keyflux/keyflux/streams/testkit"
)

// The dashboard under --auth jwt, in real Chromium against a real Keyflux:
// the page has no token at first, asks for one, keeps it in the cookie the
// server names (EventSource cannot send headers) and shows whose it is.

// dashboardSecret is the HMAC key of these tests (at least 32 bytes).
const dashboardSecret = "dashboard-test-secret-0123456789abcdef"

// mintToken signs an HS256 token for subject sub, valid until exp, that may
// read the keys under sensor:.
func mintToken(t *testing.T, secret, sub string, exp time.Time) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub":     sub,
		"exp":     exp.Unix(),
		"keyflux": map[string]any{"keys": []string{"sensor:*"}},
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// signIn types token into the token field and submits it.
func (p *page) signIn(token string) {
	p.t.Helper()
	p.typeInto("#token", token)
	p.submit("#token")
}

// pasteToken puts token into the field at once, as a paste does: typing a
// 200-character token key by key can take seconds on a loaded machine,
// longer than a short-lived token lives.
func (p *page) pasteToken(token string) {
	p.t.Helper()
	eval[bool](p, `(document.querySelector("#token").value = `+strconv.Quote(token)+`, true)`)
	p.submit("#token")
}

const tokenField = `document.body.dataset.auth === "signed-out" && !document.getElementById("signin").hidden &&
	!document.getElementById("token-form").hidden`

func TestDashboardAuthJWTTokenField(t *testing.T) {
	k := startKeyflux(t, nil, "--auth", "jwt", "--jwt-key", dashboardSecret)
	p := openDashboard(t, k, 1280, 900)
	p.waitFor(tokenField, "the token field")
	if typ := eval[string](p, `document.getElementById("token").type`); typ != "password" {
		t.Errorf("the token field is type %q, want password", typ)
	}
	if n := k.srv.sink.Clients(); n != 0 || eval[int](p, `window.__es.made`) != 0 {
		t.Errorf("the page opened a stream without an identity (%d stream clients)", n)
	}

	// Text that could end the cookie's value and add attributes of its own
	// never reaches document.cookie.
	p.signIn("x; Domain=example.com; Max-Age=99999")
	p.waitFor(`document.getElementById("token-error").textContent.startsWith("That does not look like a token")`, "the refusal of a malformed token")
	if got := eval[string](p, `document.cookie`); got != "" {
		t.Errorf("a malformed token set document.cookie to %q", got)
	}

	// A token signed with another key sets the cookie, and is refused.
	p.signIn(mintToken(t, "another-secret-of-at-least-32-bytes!", "42", time.Now().Add(time.Hour)))
	p.waitFor(text("#token-error")+` === "The server refused this token."`, "the refusal of a wrongly signed token")
	p.waitFor(tokenField, "the token field after a refused token")

	exp := time.Now().Add(time.Hour)
	token := mintToken(t, dashboardSecret, "42", exp)
	p.signIn(token)
	p.waitFor(`document.body.dataset.auth === "signed-in" && document.getElementById("signin").hidden`, "signed in")
	if got := eval[string](p, text("#who-text")); got != "Signed in as 42" {
		t.Errorf("the header says %q, want Signed in as 42", got)
	}
	if got := eval[string](p, `document.getElementById("who-expires").dataset.expires`); got != strconv.FormatInt(exp.Unix()*1000, 10) {
		t.Errorf("the header counts down to %s, want the token's exp %d000", got, exp.Unix())
	}
	if got := eval[string](p, text("#who-expires")); !strings.HasPrefix(got, "expires in 59m") && !strings.HasPrefix(got, "expires in 1h") {
		t.Errorf("the header says %q, want about an hour left", got)
	}
	if got := eval[string](p, `document.cookie`); got != "keyflux_token="+token {
		t.Errorf("document.cookie is %q, want the token in keyflux_token", got)
	}

	// The token may read sensor:* only: the form starts there, and its
	// stream carries events of sensor:1.
	p.waitApplied()
	if got := eval[string](p, `document.getElementById("conn").dataset.pattern`); got != "sensor:*" {
		t.Errorf("the page watches %q, want sensor:* (the token's scope)", got)
	}
	k.do("SET", "sensor:1", "21.5")
	p.waitFor(has(row("set", "sensor:1")), "the row of sensor:1")
	p.oneConnection()

	// Signing out clears the cookie and closes the stream.
	p.click("#sign-out")
	p.waitFor(tokenField+` && document.cookie === "" &&
		document.getElementById("conn-text").textContent === "Signed out"`, "signed out")
	testkit.Eventually(t, "the stream closed", func() bool { return k.srv.sink.Clients() == 0 })
}

func TestDashboardAuthJWTExpiredNotice(t *testing.T) {
	k := startKeyflux(t, nil, "--auth", "jwt", "--jwt-key", dashboardSecret, "--jwt-leeway", "0s")
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(k.logs.String()) // which streams opened, resumed, closed
		}
	})
	p := openDashboard(t, k, 1280, 900)
	p.waitFor(tokenField, "the token field")

	// exp counts whole seconds: this token ends 4 to 5 s from now, time
	// enough to be accepted on a loaded machine, and well inside waitFor's.
	p.pasteToken(mintToken(t, dashboardSecret, "42", time.Now().Add(5*time.Second)))
	p.waitFor(`document.body.dataset.auth === "signed-in"`, "signed in")
	p.waitApplied()

	p.waitFor(`document.body.dataset.authExpired === "token-expired"`, "the auth-expired event")
	p.waitFor(`!document.getElementById("auth-notice").hidden && `+text("#auth-notice")+
		` === "Your token expired: paste a new token to continue."`, "the expiry notice")
	p.waitFor(tokenField, "the token field again")
	// The subscriptions stay; their reconnects are refused, and the header
	// says so in the server's words, counting down to the next try.
	p.waitFor(`document.getElementById("conn").dataset.why === "auth" &&
		document.getElementById("conn-text").textContent.startsWith("Auth failed") &&
		document.getElementById("conn-why").textContent.includes("(HTTP 401)")`, "the header saying the identity was refused")

	// Written while the page has no valid token: the server's topic
	// lingers and keeps it for the page's resume.
	k.do("SET", "sensor:gap", "1")

	// A fresh token brings the stream back from its last event id, and the
	// notice goes.
	p.pasteToken(mintToken(t, dashboardSecret, "42", time.Now().Add(time.Hour)))
	p.waitFor(`document.body.dataset.auth === "signed-in" && document.getElementById("auth-notice").hidden`, "signed in again")
	p.waitApplied()
	p.waitFor(has(row("set", "sensor:gap")), "the row written while signed out, replayed on resume")
	k.do("SET", "sensor:2", "19")
	p.waitFor(has(row("set", "sensor:2")), "the row of sensor:2 after the new token")
	if n := eval[int](p, count(row("set", "sensor:gap"))); n != 1 {
		t.Errorf("the row written while signed out appears %d times, want once", n)
	}
}

// TestDashboardAuthSpringSession: with the application's SESSION cookie the
// page shows whose session it is and when it expires, offers no token
// field, and says so when the session is deleted (a logout).
func TestDashboardAuthSpringSession(t *testing.T) {
	k := startKeyflux(t, keyspaceFlags, "--auth", "spring-session")
	const id = "2c9d8e7f-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
	testkit.WriteSpringSession(t, k.rc, "spring:session", id, "alice", time.Hour)
	p := openDashboard(t, k, 1280, 900)
	p.waitFor(`document.body.dataset.auth === "signed-out" && !document.getElementById("no-session").hidden &&
		document.getElementById("token-form").hidden`, "the no-session card, without a token field")

	// The cookie as Spring's DefaultCookieSerializer writes it: the id in base64.
	cookie := "SESSION=" + base64.StdEncoding.EncodeToString([]byte(id))
	eval[bool](p, `(document.cookie = `+strconv.Quote(cookie+"; path=/")+`, true)`)
	p.do(chromedp.Reload())
	p.waitFor(`document.body.dataset.app === "ready" && document.body.dataset.auth === "signed-in"`, "signed in by the session")
	if got := eval[string](p, text("#who-text")); got != "Session of alice" {
		t.Errorf("the header says %q, want Session of alice", got)
	}
	if eval[bool](p, `!document.getElementById("sign-out").hidden`) {
		t.Error("a sign-out button under spring-session: the page cannot end the application's session")
	}
	_, _, body := k.withCookie("/api/identity", cookie)
	want, _ := body["session_expires"].(float64)
	if got := eval[string](p, `document.getElementById("who-expires").dataset.expires`); want == 0 || got != strconv.FormatFloat(want, 'f', -1, 64) {
		t.Errorf("the header counts down to %s, want session_expires %v", got, body["session_expires"])
	}
	if got := eval[string](p, text("#who-expires")); !strings.HasPrefix(got, "expires in 59m") && !strings.HasPrefix(got, "expires in 1h") {
		t.Errorf("the header says %q, want about an hour left", got)
	}
	p.waitApplied()

	k.do("DEL", "spring:session:sessions:"+id)
	p.waitFor(`document.body.dataset.authExpired === "session-ended" && `+text("#auth-notice")+
		` === "Your session ended: sign in to the application again, then reload."`, "the session-ended notice")
	p.waitFor(`document.body.dataset.auth === "signed-out" && !document.getElementById("no-session").hidden`, "the no-session card again")
}
