package browser

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

const password = "correct horse battery"

// open opens the web client, which shows its login form to a new visitor.
func (b *browser) open(api string) {
	b.t.Helper()
	b.do("open the web client", chromedp.Navigate(api+"/"), chromedp.WaitVisible(chromedp.ID("login-form")))
}

// signUp signs up on the login form; it returns when the socket is live.
func (b *browser) signUp(handle string) {
	b.t.Helper()
	b.do("sign up",
		chromedp.SendKeys(chromedp.ID("login-handle"), handle),
		chromedp.SendKeys(chromedp.ID("login-password"), password),
		chromedp.Click(chromedp.CSS(`#login-form button[value="signup"]`)),
	)
	b.until("connected", `document.querySelector("#connection").dataset.state === "live"`)
}

// send types text into the composer and presses the Send button.
func (b *browser) send(text string) {
	b.t.Helper()
	b.do("send "+text, chromedp.SendKeys(chromedp.ID("composer-text"), text), chromedp.Click(chromedp.CSS("#composer button[type=submit]")))
}

// texts are the texts of the open conversation's messages, top to bottom.
func (b *browser) texts() []string {
	b.t.Helper()
	var out []string
	b.eval(`[...document.querySelectorAll("#messages li.msg:not(.event) .text")].map(e => e.textContent)`, &out)
	return out
}

// ownTicks is a JavaScript expression: own messages, top to bottom, show these ticks.
func ownTicks(ticks ...string) string {
	return `JSON.stringify([...document.querySelectorAll("#messages li.mine")].map(e => e.dataset.tick)) === ` +
		jsString(jsonArray(ticks))
}

func jsonArray(s []string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestTwoPeopleChatInBrowsers: Alice and Bob, each in their own Chromium, sign up, open a direct
// conversation, see unread counts, typing and read ticks; Bob closes his page, Alice sends
// several messages (one of 100,000 characters), and Bob, back, sees them all in order.
func TestTwoPeopleChatInBrowsers(t *testing.T) {
	n := startNatter(t)
	shots := artifacts(t)
	step := 0
	alice := newBrowser(t, "alice", shots, &step)
	bob := newBrowser(t, "bob", shots, &step)

	alice.open(n.API)
	alice.shot("login form")
	alice.signUp("alice")
	alice.shot("signed up")
	bob.open(n.API)
	bob.signUp("bob")

	// Alice opens a direct conversation by handle; Bob is online.
	alice.do("open a chat with bob",
		chromedp.SendKeys(chromedp.ID("direct-handle"), "bob"),
		chromedp.Click(chromedp.CSS("#direct-form button")),
	)
	alice.until("the chat with bob is open", `document.querySelector("#chat-title").textContent === "bob"`)
	alice.until("it waits for bob", `document.querySelector("#request-text").textContent === "Waiting for bob to accept."`)
	alice.send("hello bob")
	alice.until("the message is acked, held from bob", `document.querySelector("#messages li.mine")?.dataset.tick === "sent"`)
	alice.shot("sent hello, waiting for bob")

	// Bob's page, open all along, lists the request at once (a request frame; nothing polls),
	// without its message; he accepts it, the message shows, and Alice sees it read and Bob
	// online.
	bob.until("connected", `document.querySelector("#connection").dataset.state === "live"`)
	bob.until("alice's request", `document.querySelector("#conversations .conv-name")?.textContent === "alice · wants to chat"`)
	bob.until("nothing unread", `document.querySelector("#conversations .unread") === null`)
	bob.shot("a request from alice")
	bob.click("open the request", "#conversations button")
	bob.until("no message before the accept", `document.querySelector("#request-text").textContent.startsWith("alice wants to chat") &&
		document.querySelectorAll("#messages .text").length === 0`)
	bob.do("accept", chromedp.Click(chromedp.ID("accept-request")))
	bob.until("hello shows", `document.querySelector("#messages .text")?.textContent === "hello bob"`)
	bob.until("the request bar goes", `document.querySelector("#request-bar").hidden`)
	alice.until("the message shows read", ownTicks("read"))
	// Bob's presence is Alice's to see from the accept on: a reload asks for it.
	alice.do("reload", chromedp.Reload())
	alice.until("connected", `document.querySelector("#connection").dataset.state === "live"`)
	alice.click("reopen the chat", "#conversations button")
	alice.until("bob shows online", `document.querySelector("#chat-presence").textContent === "online"`)
	alice.until("the message still shows read", ownTicks("read"))

	// Typing: Bob types, Alice sees it; Bob sends, the indicator goes.
	bob.do("type", chromedp.SendKeys(chromedp.ID("composer-text"), "hi alice"))
	alice.until("bob is typing", `document.querySelector("#typing").textContent === "bob is typing…"`)
	alice.shot("bob is typing, hello read")
	bob.do("send with Enter", chromedp.SendKeys(chromedp.ID("composer-text"), "\r"))
	alice.until("bob's reply", `[...document.querySelectorAll("#messages .text")].some(e => e.textContent === "hi alice")`)
	alice.until("typing stops", `document.querySelector("#typing").textContent === ""`)
	bob.shot("chatting")

	// Bob closes his page. Alice sees him go offline and sends while he is away.
	bob.do("close the page", chromedp.Navigate("about:blank"))
	alice.until("bob shows last seen", `document.querySelector("#chat-presence").textContent.startsWith("last seen")`)
	long := strings.Repeat("0123456789", 10_000) // 100,000 characters, the limit
	away := []string{"are you there?", "I will wait", "a long one follows"}
	for _, m := range away {
		alice.send(m)
	}
	alice.do("paste a 100,000-character message",
		chromedp.SetValue(chromedp.ID("composer-text"), long),
		chromedp.Click(chromedp.CSS("#composer button[type=submit]")),
	)
	alice.until("all four are acked, not delivered", ownTicks("read", "sent", "sent", "sent", "sent"))
	alice.shot("bob away, sent four")

	// Bob comes back: the same tab, device and cursor. He catches up and sees everything in order.
	// (Chromium keeps the page he left in its back/forward cache: the page closed its socket when
	// he left, and reloads when he comes back.)
	bob.do("come back", chromedp.NavigateBack())
	bob.until("connected", `document.querySelector("#connection").dataset.state === "live"`)
	bob.until("four unread", `document.querySelector("#conversations .unread")?.textContent === "4"`)
	bob.shot("back, four unread")
	bob.click("open the chat", "#conversations button")
	want := append([]string{"hello bob", "hi alice"}, away...)
	want = append(want, long[:1500]+"…")
	bob.until("every message", `document.querySelectorAll("#messages li.msg:not(.event)").length === 6`)
	if got := bob.texts(); !slices.Equal(got, want) {
		t.Fatalf("bob sees %d messages %q..., want %q... in this order", len(got), abbreviate(got), abbreviate(want))
	}
	bob.until("the long message is folded", `document.querySelector("#messages .fold")?.textContent === "Show all 100,000 characters"`)
	bob.shot("caught up, long message folded")
	bob.do("unfold", chromedp.Click(chromedp.CSS("#messages .fold")))
	bob.until("the long message unfolds", `[...document.querySelectorAll("#messages .text")].some(e => e.textContent.length === 100000)`)
	alice.until("all of alice's messages show read", ownTicks("read", "read", "read", "read", "read"))
	alice.shot("all read")

	// The server restarts: both pages show that they are reconnecting, then catch up.
	n.stop()
	for _, b := range []*browser{alice, bob} {
		b.until("the page says it is reconnecting", `document.querySelector("#connection").dataset.state === "disconnected" &&
			document.querySelector("#connection").textContent.startsWith("Offline: reconnecting")`)
	}
	bob.shot("server down, reconnecting")
	n.start()
	alice.until("connected again", `document.querySelector("#connection").dataset.state === "live"`)
	alice.send("still here?")
	var scrolled bool
	bob.eval(`(() => { const h = document.querySelector("#history"); h.scrollTop = h.scrollHeight; return true; })()`, &scrolled)
	bob.until("the message after the restart", `[...document.querySelectorAll("#messages .text")].at(-1)?.textContent === "still here?"`)
	alice.until("read after the restart", ownTicks("read", "read", "read", "read", "read", "read"))
	bob.shot("reconnected")

	// A group: Alice creates it inviting Bob, who accepts; she removes him, invites him back, he
	// accepts again, she makes him an admin, and he leaves. Each invitation shows on Bob's open
	// page at once: it reaches his devices live.
	alice.do("create a group",
		chromedp.Click(chromedp.CSS("#group-create summary")),
		chromedp.SendKeys(chromedp.ID("group-name"), "Trip"),
		chromedp.SendKeys(chromedp.ID("group-members"), "bob"),
		chromedp.Click(chromedp.CSS("#group-form button")),
	)
	alice.until("the group is open", `document.querySelector("#chat-title").textContent === "Trip"`)
	alice.until("its creation shows", `document.querySelector("#messages li.event")?.textContent === "You created the group “Trip”"`)
	alice.until("the invitation shows", `[...document.querySelectorAll("#messages li.event")].some(e => e.textContent === "You invited bob")`)
	bob.until("the invitation appears", `document.querySelector('#invitation-list button[aria-label="Accept Trip"]') !== null`)
	bob.shot("group invitation")
	bob.click("accept", `#invitation-list button[aria-label="Accept Trip"]`)
	alice.until("bob joined", `[...document.querySelectorAll("#messages li.event")].some(e => e.textContent === "bob joined")`)
	alice.send("who brings the tent?")
	bob.until("the group appears", `[...document.querySelectorAll("#conversations .conv-name")].some(e => e.textContent === "Trip")`)
	bob.click("open the group", `#conversations button[data-conv^="g"]`)
	bob.until("alice's group message, with her name", `[...document.querySelectorAll("#messages li.msg")].some(e =>
		e.querySelector(".who")?.textContent === "alice" && e.querySelector(".text")?.textContent === "who brings the tent?")`)
	alice.do("open the members", chromedp.Click(chromedp.CSS("#members summary")))
	alice.click("remove bob", `#member-list button[aria-label="Remove bob"]`)
	alice.until("bob's removal shows", `[...document.querySelectorAll("#messages li.event")].some(e => e.textContent === "You removed bob")`)
	bob.until("the group is gone", `![...document.querySelectorAll("#conversations .conv-name")].some(e => e.textContent === "Trip") &&
		!document.querySelector("#chat-empty").hidden`)
	alice.do("invite bob back", chromedp.SendKeys(chromedp.ID("add-member-handle"), "bob"), chromedp.Click(chromedp.CSS("#add-member-form button")))
	alice.until("bob invited", `document.querySelector("#invitee-list li")?.textContent.startsWith("bob · invited")`)
	bob.until("the invitation appears again", `document.querySelector('#invitation-list button[aria-label="Accept Trip"]') !== null`)
	bob.click("accept again", `#invitation-list button[aria-label="Accept Trip"]`)
	alice.until("two members", `document.querySelectorAll("#member-list li").length === 2 && document.querySelectorAll("#invitee-list li").length === 0`)
	alice.click("make bob admin", `#member-list button[aria-label="Make bob admin"]`)
	alice.until("bob is an admin", `[...document.querySelectorAll("#member-list .member-role")].some(e => e.textContent === "bob · admin")`)
	alice.shot("group members")
	bob.until("the group is back", `[...document.querySelectorAll("#conversations .conv-name")].some(e => e.textContent === "Trip")`)
	bob.click("open the group again", `#conversations button[data-conv^="g"]`)
	bob.click("open the members", "#members summary")
	// Leaving asks for a second click within 5 s. Both clicks are the page's own: a mouse click
	// at where the button was drawn misses it when the members list is drawn again meanwhile
	// (the group's details arriving), and the second one is made in the same step that sees the
	// question, so that a slow machine cannot let it lapse in between.
	bob.click("ask to leave the group", "#leave-group")
	bob.until("leaving asks to confirm, and is confirmed", `(() => {
		const b = document.querySelector("#leave-group");
		if (b.textContent !== "Leave: click again to confirm") return false;
		b.click();
		return true;
	})()`)
	alice.until("bob left", `[...document.querySelectorAll("#messages li.event")].at(-1)?.textContent === "bob left"`)
	bob.until("the group is gone after leaving", `![...document.querySelectorAll("#conversations .conv-name")].some(e => e.textContent === "Trip")`)
	alice.shot("group after bob left")

	// History pages: with 60 more messages, Bob reloads, opens the conversation, scrolls up
	// until its beginning, and has every message once, in order.
	var seeded []string
	for i := range 60 {
		seeded = append(seeded, fmt.Sprintf("message %03d", i))
	}
	seed(t, n.API, "alice", password, seeded)
	bob.do("reload", chromedp.Navigate(n.API+"/"))
	bob.click("open the chat", `#conversations button[data-conv^="d"]`)
	bob.until("the newest page", `[...document.querySelectorAll("#messages .text")].at(-1)?.textContent === "message 059"`)
	bob.until("scrolled up to the beginning", `(() => { document.querySelector("#history").scrollTop = 0;
		return document.querySelector("#history-status").textContent === "Beginning of the conversation"; })()`)
	bob.shot("scrolled to the beginning")
	want = append(want, "still here?")
	want = append(want, seeded...)
	var got []string
	bob.eval(`[...document.querySelectorAll("#messages li.msg:not(.event) .text")].map(e => e.textContent.length > 1600 ? e.textContent.slice(0, 1500) + "…" : e.textContent)`, &got)
	if !slices.Equal(got, want) {
		t.Fatalf("after scrolling up bob has %d messages, want %d in order: %q", len(got), len(want), abbreviate(got))
	}
}

// abbreviate cuts long texts for a failure message.
func abbreviate(texts []string) []string {
	out := make([]string, len(texts))
	for i, s := range texts {
		if len(s) > 40 {
			s = s[:40] + "…"
		}
		out[i] = s
	}
	return out
}
